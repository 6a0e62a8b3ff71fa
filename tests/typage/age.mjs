// typage (npm age-encryption), an independent age implementation, as a test oracle:
//   node age.mjs keygen                      -> identity line, recipient line (hybrid PQ)
//   node age.mjs encrypt IN OUT RECIPIENT... -> OUT = IN encrypted to the recipients
//   node age.mjs decrypt IDENTITY_FILE IN    -> plaintext on stdout (armored IN accepted)
// TYPAGE_MODULE is the path of the package's dist/index.js.
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const age = await import(pathToFileURL(process.env.TYPAGE_MODULE).href);
const [cmd, ...args] = process.argv.slice(2);

if (cmd === "keygen") {
  const identity = await age.generateHybridIdentity();
  console.log(identity);
  console.log(await age.identityToRecipient(identity));
} else if (cmd === "encrypt") {
  const [input, output, ...recipients] = args;
  const e = new age.Encrypter();
  for (const r of recipients) e.addRecipient(r);
  writeFileSync(output, await e.encrypt(new Uint8Array(readFileSync(input))));
} else if (cmd === "decrypt") {
  const [identityFile, input] = args;
  const d = new age.Decrypter();
  for (const line of readFileSync(identityFile, "utf8").split("\n")) {
    const l = line.trim();
    if (l && !l.startsWith("#")) d.addIdentity(l);
  }
  let data = new Uint8Array(readFileSync(input));
  const text = Buffer.from(data.subarray(0, 34)).toString("latin1");
  if (text.startsWith("-----BEGIN AGE ENCRYPTED FILE-----")) {
    data = age.armor.decode(Buffer.from(data).toString("latin1"));
  }
  process.stdout.write(await d.decrypt(data));
} else {
  console.error(`usage: age.mjs keygen | encrypt IN OUT RECIPIENT... | decrypt IDENTITY_FILE IN`);
  process.exit(2);
}
