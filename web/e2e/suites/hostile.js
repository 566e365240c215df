// Hostile files dropped on the site (issue 17): huge header counts, truncated downloads, names
// that are HTML, a header claiming a gigabyte, deeply nested JSON. Each must end in an inline
// error naming the file, with the page still responsive and no request leaving the page's origin.
'use strict';
const assert = require('assert');
const fs = require('fs');
const { PROBE_REPORT } = require('../lib');
const { tinyGguf } = require('../model_files');

/** Record every request the page makes to another origin than `base`'s. */
function watchRequests(page, base) {
  const origin = new URL(base).origin;
  const foreign = [];
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith(origin) && !url.startsWith('data:') && !url.startsWith('blob:')) foreign.push(url);
  });
  return foreign;
}

/** The page answers a script within `ms` (a frozen tab would not). */
async function assertResponsive(page, ms = 2000) {
  const started = Date.now();
  const two = await Promise.race([
    page.evaluate(() => 1 + 1),
    new Promise((_, reject) => setTimeout(() => reject(new Error(`page unresponsive for ${ms} ms`)), ms)),
  ]);
  assert.strictEqual(two, 2);
  return Date.now() - started;
}

/** A GGUF v3 header: magic, version, tensor count, metadata count (both u64). */
function ggufCounts(tensors, kvs) {
  const b = Buffer.alloc(24);
  b.write('GGUF', 0, 'latin1');
  b.writeUInt32LE(3, 4);
  b.writeBigUInt64LE(BigInt(tensors), 8);
  b.writeBigUInt64LE(BigInt(kvs), 16);
  return b;
}

/** A safetensors file whose length prefix claims `claimed` header bytes, with `have` present. */
function safetensorsClaiming(claimed, have) {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(claimed));
  return Buffer.concat([len, Buffer.from('{"a":'.padEnd(have, ' '), 'utf8')]);
}

/** A real report whose adapter claims 2^60 bytes of memory (more than any machine has). */
function impossibleMemoryReport() {
  const report = JSON.parse(fs.readFileSync(PROBE_REPORT, 'utf8'));
  report.adapters[report.selected_adapter ?? 0].device_local_memory_bytes = 2 ** 60;
  return Buffer.from(JSON.stringify(report));
}

const XSS = '<img src=x onerror="window.__pwned=1">';

module.exports = {
  async 'hostile: model files with impossible headers end in inline errors'({ page, base, shot, log }) {
    const foreign = watchRequests(page, base);
    await page.goto(base);
    await page.click('#tab-file');
    const full = tinyGguf().buffer;
    const cases = [
      ['count.gguf', ggufCounts(0xFFFFFFFF, 0), /count\.gguf: .*tensor_count/],
      ['kvs.gguf', ggufCounts(0, 2n ** 62n), /kvs\.gguf: .*metadata_kv_count/],
      ['truncated.gguf', full.subarray(0, full.length - 4096), /truncated\.gguf: .*truncated/],
      ['gigabyte.safetensors', safetensorsClaiming(1_000_000_000, 64), /gigabyte\.safetensors: .*1000000000.*(truncated|not a safetensors file)/],
      [`${XSS}.gguf`, Buffer.from('GGUF\x01\x00\x00\x00'), /<img src=x onerror="window\.__pwned=1">\.gguf: GGUF version 1/],
    ];
    for (const [name, buffer, want] of cases) {
      const started = Date.now();
      await page.setInputFiles('#model-file', { name, mimeType: 'application/octet-stream', buffer });
      await page.waitForFunction(
        (n) => (document.querySelector('#file-error')?.textContent ?? '').includes(n),
        name.slice(0, 12),
        { timeout: 10000 },
      );
      const err = (await page.textContent('#file-error')).trim();
      log(`${name.slice(0, 24)} (${Date.now() - started} ms): ${err.slice(0, 120)}`);
      assert.match(err, want);
      await assertResponsive(page);
    }
    assert.strictEqual(await page.evaluate(() => window.__pwned), undefined, 'a file name ran as HTML');
    assert.strictEqual(await page.$('#file-error img'), null, 'a file name became an element');
    await shot('hostile-model-files');
    assert.deepStrictEqual(foreign, [], `requests left the page: ${foreign.join(', ')}`);
  },

  async 'hostile: reports that are deeply nested, huge or impossible end in inline errors'({ page, base, log }) {
    const foreign = watchRequests(page, base);
    await page.goto(`${base}?page=reports`);
    const cases = [
      ['nested.json', Buffer.from('['.repeat(200000)), /nested\.json: .*(recursion|malformed)/i],
      ['memory.json', impossibleMemoryReport(), /memory\.json: .*device_local_memory_bytes/],
      [`${XSS}.json`, Buffer.from('{'), /<img src=x onerror="window\.__pwned=1">\.json: .*malformed JSON/],
    ];
    for (const [name, buffer, want] of cases) {
      await page.setInputFiles('#report-file', { name, mimeType: 'application/json', buffer });
      await page.waitForFunction(
        (n) => [...document.querySelectorAll('#report-errors li')].some((li) => li.textContent.includes(n)),
        name.slice(0, 12),
        { timeout: 10000 },
      );
      const errs = await page.$$eval('#report-errors li', (lis) => lis.map((li) => li.textContent));
      const err = errs.find((e) => e.includes(name.slice(0, 12)));
      log(`${name.slice(0, 24)}: ${err.slice(0, 120)}`);
      assert.match(err, want);
      await assertResponsive(page);
    }
    assert.strictEqual(await page.evaluate(() => window.__pwned), undefined, 'a file name ran as HTML');
    assert.strictEqual(await page.$('#report-errors img'), null, 'a file name became an element');
    assert.deepStrictEqual(foreign, [], `requests left the page: ${foreign.join(', ')}`);
  },
};
