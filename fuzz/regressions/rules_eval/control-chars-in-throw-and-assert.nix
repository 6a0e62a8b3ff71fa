{ "a.age".publicKeys = throw "line one
line two[31m"; "b.age" = assert "x
y" == 1; {}; }
