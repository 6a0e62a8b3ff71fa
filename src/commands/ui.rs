//! Terminal output helpers: colour, warnings, progress.
