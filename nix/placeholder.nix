# The placeholder of a secret in `age.templates.<n>.content`: an opaque token derived from
# the secret's name only (never from its value), replaced by the secret's plaintext when
# `agefleet activate` renders the template. The one definition the modules and tests use;
# the activation code computes the same token (sha256 of the name, lowercase hex).
name: "<AGEFLEET:PLACEHOLDER:${builtins.hashString "sha256" name}>"
