# NixOS VM test of activation through the module: boot, a switch (generation 2), and the
# on-disk contract agenix users rely on. Run by `nix flake check` where a builder with KVM
# exists. The identity is a throwaway test key (fixtures/host-key.txt), world-readable in
# the store on purpose: it protects nothing but these fixtures.
{ pkgs, module }:
pkgs.testers.nixosTest {
  name = "agefleet-activation";

  nodes.machine =
    { ... }:
    {
      imports = [ module ];
      users.users.alice = {
        isNormalUser = true;
        group = "users";
      };
      age.identityPaths = [ "${./fixtures/host-key.txt}" ];
      age.secrets = {
        plain.file = ./fixtures/plain.age;
        owned = {
          file = ./fixtures/owned.age;
          owner = "alice";
          group = "users";
          mode = "0440";
        };
        linked = {
          file = ./fixtures/plain.age;
          path = "/etc/agefleet-linked";
        };
        copied = {
          file = ./fixtures/plain.age;
          path = "/var/lib/agefleet-copied";
          symlink = false;
          owner = "alice";
        };
      };
    };

  testScript = ''
    machine.wait_for_unit("multi-user.target")

    with subtest("secrets are installed with content, owner and mode"):
        machine.succeed("test \"$(cat /run/agenix/plain)\" = 'hello from agefleet'")
        machine.succeed("test \"$(stat -c %U:%G:%a /run/agenix/plain)\" = root:root:400")
        machine.succeed("test \"$(stat -c %U:%G:%a /run/agenix/owned)\" = alice:users:440")
        machine.succeed("su alice -c 'cat /run/agenix/owned' | grep -q 'owned secret'")
        machine.fail("su alice -c 'cat /run/agenix/plain'")

    with subtest("RAM-backed mount and generation layout"):
        machine.succeed("test \"$(stat -f -c %T /run/agenix.d)\" = ramfs")
        machine.succeed("test \"$(stat -c %a:%G /run/agenix.d)\" = 751:keys")
        machine.succeed("test \"$(readlink /run/agenix)\" = /run/agenix.d/1")

    with subtest("custom paths: symlink and file"):
        machine.succeed("test \"$(readlink /etc/agefleet-linked)\" = /run/agenix/linked")
        machine.succeed("test \"$(cat /etc/agefleet-linked)\" = 'hello from agefleet'")
        machine.succeed("test -f /var/lib/agefleet-copied -a ! -L /var/lib/agefleet-copied")
        machine.succeed("test \"$(stat -c %U:%a /var/lib/agefleet-copied)\" = alice:400")

    with subtest("a switch makes generation 2 and removes generation 1"):
        machine.succeed("/run/current-system/bin/switch-to-configuration test")
        machine.succeed("test \"$(readlink /run/agenix)\" = /run/agenix.d/2")
        machine.fail("test -e /run/agenix.d/1")
        machine.succeed("test \"$(stat -c %U /run/agenix/owned)\" = alice")
  '';
}
