# Configurations that use none of the restart/reload or template options, and what the
# modules make of them: the activation scripts, units and agents that name the manifest.
# tests/it/nix_eval.rs compares them (and the manifests they name) byte for byte with
# nix/tests/eval/compat-expected.json, captured before those options existed: a
# configuration that does not use them must activate exactly as it did.
{ harness }:
let
  secrets = {
    age.identityPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
    age.secrets.a.file = "/s/a.age";
    age.secrets.b = {
      file = "/s/b.age";
      path = "/etc/b";
      mode = "0440";
      owner = "alice";
      group = "users";
    };
    age.secrets.c = {
      file = "/s/c.age";
      path = "/var/lib/c";
      symlink = false;
      name = "cee";
    };
  };
  home = {
    age.secrets.a.file = "/s/a.age";
    age.secrets.b = {
      file = "/s/b.age";
      path = "/home/user1/.config/b";
      mode = "0440";
    };
  };
  config = platform: modules: harness.config { inherit platform modules; };
  nixos = c: {
    script = c.system.activationScript;
    dry = c.system.dryActivationScript;
    services = builtins.toJSON c.systemd.services;
  };
in
{
  nixos = nixos (config "nixos" [ secrets ]);
  nixos-sysusers = nixos (config "nixos" [
    secrets
    { systemd.sysusers.enable = true; }
  ]);
  darwin =
    let
      c = config "darwin" [ secrets ];
    in
    {
      script = c.system.activationScripts.script.text;
      daemon = c.launchd.daemons.activate-agenix.script;
    };
  home-linux = builtins.toJSON (config "home-linux" [ home ]).systemd.user.services;
  home-darwin = builtins.toJSON (config "home-darwin" [ home ]).launchd.agents;
}
