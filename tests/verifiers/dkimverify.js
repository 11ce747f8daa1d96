// Verify the DKIM signatures of the message on stdin with mailauth (Node.js), an
// implementation independent of the relay's dkimpy that also knows ed25519-sha256
// (Debian 12's Mail::DKIM does not), asking the DNS server on 127.0.0.1:PORT for keys.
// Prints one line per signature: "RESULT d=DOMAIN s=SELECTOR a=ALGORITHM (DETAIL)";
// exits 0 when there is at least one signature and every one of them passes.
'use strict';
const dns = require('node:dns');
const { dkimVerify } = require('mailauth/lib/dkim/verify');

async function main() {
    const port = process.argv[2];
    const resolver = new dns.promises.Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([`127.0.0.1:${port}`]);
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    const { results } = await dkimVerify(Buffer.concat(chunks), {
        resolver: (name, type) => resolver.resolve(name, type),
    });
    let passed = 0;
    for (const r of results) {
        const result = r.status.result;
        console.log(`${result} d=${r.signingDomain} s=${r.selector} a=${r.algo} (${r.status.comment || ''})`);
        if (result === 'pass') passed++;
    }
    if (!results.length) console.log('none: no signature');
    process.exit(results.length && passed === results.length ? 0 : 1);
}
main().catch((err) => { console.error(err); process.exit(2); });
