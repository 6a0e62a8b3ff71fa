with import ./keys.nix;
{
  "secret1.age".publicKeys = users ++ systems;
  "secret2.age".publicKeys = [ alice server ];
  "everyone.age".publicKeys = everyone;
  "yubikey-only.age".publicKeys = [ yubi ];
}
