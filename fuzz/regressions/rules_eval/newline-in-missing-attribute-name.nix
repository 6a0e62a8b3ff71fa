let
  hosts = {
    laptop = { key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIALRAR5OrK3CospN77xuOH/lcx7mlE7PHt5pL+wgKeS9 laptop"; };
    server = { key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILij8MIqg3ja9D/iJXIBUj+uZnfbmNAep0bIdfCm8zik server"; extra = [ "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCw8A6PTrnHNuqN9ZH+HLMI87vNjD0cFI421Y44XGP9NL7f2cXEbi+Px3yPqs62EHJgWr52KEzPW22PNHuCFTwQcN2LZCU7BFKjde8s3lZYVUyx4PKPLaUWPk8QcJDO29ajtOE8o+ZKh1zGzuBy2dFoOt8lC8tD0o/eQ/CC+OxY12pmClBY1uzcBCpGDXYuDPsDT0mJDpbofiLcrlKoYTdTvr6DVtHZeDY35o1HNfUtD/7ABzxHwjxmsf5ot97Q0gmJaXUBM2BzbFn0oifv5hB5IA6qF0wK+YfgheSAf/xO95ktGryP6MEwWSELbdPQWLhjq52A6KW2wxdxq92SWlEv legacy" ]; };
  };
  keysFor = h: [ hosts.${h}.key ] ++ (hosts.${h}.extra or [ ]);
in
{
  "laptop.age".publicKeys = keysFor "la null) (hosys ? laptop.key) (hosts ? laptop.nope)
      (builtins.typeOf 1) (builtins.typeOf hosts)
    ];ptop";
  "server.age".publicKeys = keysFor "server";
  "maybe.age".publicKeys =
    if hosts ? nas then keysFor "nas"
    else if builtins.hasAttr "server" hosts then [ (builtins.getAttr "key" hosts.server) ]
    else [ ];
  "types.age" = {
    publicKeys = [ hosts.lape.pokyt ];
    checks = [
      (builtins.isList [ ]) (builtins.isString "") (builtins.isAttrs { })
      (builtins.isNull null) (hosys ? laptop.key) (hosts ? laptop.nope)
      (builtins.typeOf 1) (builtins.typeOf hosts)
    ];
  };
}
