let
  raw = "  ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDTpal8e4fFl+XNauNP37cGvfZ0Dg7lZiis3U8C5YiZx router  ";
  trimmed = builtins.head (builtins.match "[[:space:]]*([^[:space:]].*[^[:space:]])[[:space:]]*" raw);
  comment = builtins.elemAt (builtins.match "ssh-[a-z0-9]+ [A-Za-z0-9+/=]+ (.*)" trimmed) 0;
in
{
  "router.age" = {
    publicKeys = [ trimmed ];
    inherit comment;
    joined = builtins.concatStringsSep ", " [ "a" "b" "c" ];
    len = builtins.stringLength comment;
    swapped = builtins.replaceStrings [ "a" "b" ] [ "b" "a" ] "abcab";
    empty = builtins.replaceStrings [ "" ] [ "-" ] "xyz";
    sub = builtins.substring 4 100 trimmed == builtins.substring 4 (-1) trimmed;
    str = toString [ 1 "two" [ ] null true false ];
  };
}
