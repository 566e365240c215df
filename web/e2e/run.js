// End-to-end tests of the headroom site in Debian's headless Chromium, driven by playwright-core
// (never `npx playwright install`: we use /usr/bin/chromium). WebGPU runs on Chromium's bundled
// SwiftShader with --enable-unsafe-webgpu.
//
//   node web/e2e/run.js http://127.0.0.1:PORT/
//   env: SCREENSHOT_DIR (default ./screenshots), CHROMIUM (default /usr/bin/chromium),
//        HEADROOM_PROBE_REPORT (a report written by `headroom probe`; default the fixture),
//        E2E_ONLY (a substring: run only the tests whose name contains it)
//
// Prints one line per test and ends with "N passed, N failed"; exits 1 if any failed.
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');
// Every suite in web/e2e/suites/, in file-name order; each exports { 'test name': async fn }.
const SUITES = path.join(__dirname, 'suites');
const tests = {};
for (const file of fs.readdirSync(SUITES).filter((f) => f.endsWith('.js')).sort()) {
  for (const [name, fn] of Object.entries(require(path.join(SUITES, file)))) {
    if (name in tests) throw new Error(`two e2e tests are named "${name}" (${file})`);
    tests[name] = fn;
  }
}

const BASE = process.argv[2];
if (!BASE) {
  console.error('usage: node run.js BASE_URL');
  process.exit(2);
}
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || path.join(process.cwd(), 'screenshots');
fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });

(async () => {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-e2e-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 60000,
    viewport: { width: 1200, height: 900 },
    acceptDownloads: true,
    args: ['--no-sandbox', '--disable-gpu-sandbox', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic', '--enable-unsafe-webgpu'],
  });
  let passed = 0;
  let failed = 0;
  const only = process.env.E2E_ONLY;
  for (const [name, fn] of Object.entries(tests)) {
    if (only && !name.includes(only)) continue;
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console.error: ${m.text()}`);
    });
    const started = Date.now();
    const shot = async (label) => {
      const file = path.join(SCREENSHOT_DIR, `${label}.png`);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    };
    try {
      await fn({ page, base: BASE, shot, log: (s) => console.log(`    ${s}`) });
      // A panic in Rust shows up as a page error: never acceptable.
      const panics = errors.filter((e) => /panicked|unreachable|RuntimeError/.test(e));
      if (panics.length) throw new Error(`page errors: ${panics.join(' | ')}`);
      passed++;
      console.log(`ok   ${name} (${Date.now() - started} ms)`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${e.message.split('\n').slice(0, 4).join(' ')}`);
      for (const err of errors) console.log(`    page: ${err}`);
      try { await shot(`FAILED-${name.replace(/[^A-Za-z0-9]+/g, "-")}`); } catch (_) { /* page may be gone */ }
    }
    await page.close();
  }
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
