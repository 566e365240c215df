// The site a person would rather use: each point of issue 16, asserted, with desktop and phone
// screenshots of every state under target/screenshots/. Each test gets { page, base, shot, log }.
'use strict';
const assert = require('assert');
const path = require('path');
const { DATA, PROBE_REPORT, verdict } = require('../lib');

const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };

/** Wait until the verdict mentions `text`, then return the verdict. */
async function verdictWith(page, text) {
  await page.waitForFunction((t) => (document.querySelector('#verdict')?.textContent || '').includes(t), text, { timeout: 30000 });
  return verdict(page);
}

/** Screenshots of the page's current state at desktop and phone sizes; on the phone nothing may
 * widen the page past the screen. */
async function shots(page, shot, label) {
  await page.setViewportSize(DESKTOP);
  await shot(`${label}-desktop`);
  await page.setViewportSize(PHONE);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  const wide = await page.evaluate((w) => [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > w + 1 && e.offsetParent)
    .slice(0, 3).map((e) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}.${e.className}`), PHONE.width);
  await shot(`${label}-phone`);
  await page.setViewportSize(DESKTOP);
  assert.ok(width <= PHONE.width, `${label}: the page is ${width} px wide on a ${PHONE.width} px phone (${wide.join(', ')})`);
}

/** The first format-table row per format: its cells' text. */
async function formatRows(page) {
  await page.waitForSelector('#formats tbody tr');
  return page.$$eval('#formats tbody tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent.trim())));
}

module.exports = {
  async 'issue 16.1: QLoRA checkpoints by default; its control and a long mode link'({ page, base, shot, log }) {
    await page.goto(`${base}?model=llama-3.1-8b&device=rtx-4090&mode=qlora&ctx=4096`);
    const on = await verdictWith(page, 'llama-3.1-8b');
    log(on);
    assert.match(on, /: fits/);
    assert.strictEqual(await page.isChecked('#checkpointing'), true);
    await page.uncheck('#checkpointing');
    await page.waitForFunction(() => /ckpt=0/.test(location.search));
    const off = await verdictWith(page, 'does not fit');
    log(`without checkpointing: ${off}`);
    await shots(page, shot, 'issue16-1-qlora-no-checkpointing');
    // A link written in core's long mode grammar shows its mode in the Mode control.
    await page.goto(`${base}?model=llama-3.1-8b&device=rtx-4090&mode=qlora:ckpt`);
    await verdictWith(page, 'llama-3.1-8b');
    assert.strictEqual(await page.inputValue('#mode'), 'qlora');
    assert.strictEqual(await page.isChecked('#checkpointing'), true);
  },

  async 'issue 16.2: the format table in QLoRA mode and with a q8_0 KV cache'({ page, base, shot, log }) {
    await page.goto(`${base}?model=llama-3.1-8b&device=rtx-4090&mode=qlora`);
    await verdictWith(page, 'llama-3.1-8b');
    const rows = await formatRows(page);
    const names = rows.map((r) => r[0].replace(' ★', ''));
    log(`QLoRA rows: ${names.join(', ')}`);
    assert.strictEqual(new Set(names).size, names.length, `a format twice: ${names}`);
    assert.ok(names.includes('nf4+dq'));
    assert.match(await page.textContent('#formats-skipped'), /QLoRA trains on a bitsandbytes 4-bit base/);
    // A KV type only llama.cpp has: the transformers rows stay, with their own KV type named.
    await page.goto(`${base}?model=llama-3.1-8b&device=rtx-4090&kv=q8_0&format=Q4_K_M`);
    await verdictWith(page, 'Q4_K_M');
    const kvRows = await formatRows(page);
    const bf16 = kvRows.find((r) => r[0].replace(' ★', '') === 'bf16');
    assert.ok(bf16, 'the bf16 row is still there');
    assert.match(bf16[4], /KV bf16/);
    await shots(page, shot, 'issue16-2-kv-q8');
  },

  async 'issue 16.3: a measured device is not its probe budget'({ page, base, shot, log }) {
    await page.goto(`${base}?page=reports`);
    await page.setInputFiles('#report-file', path.join(DATA, 'reports', 'h200-report.json'));
    await page.waitForSelector('.report .report-memory');
    const memory = await page.textContent('.report .report-memory');
    log(memory);
    assert.match(memory, /device-local/);
    assert.match(memory, /lower bound/);
    await page.click('.report .use-device');
    await page.waitForSelector('#device-status');
    await page.waitForFunction(() => /my device: measured/.test(document.querySelector('#device-status').textContent));
    await verdictWith(page, 'H200');
    const usable = await page.textContent('#usable');
    log(`usable: ${usable}; basis: ${await page.textContent('#usable-basis')}`);
    assert.ok(parseFloat(usable) > 100, `an H200's usable memory is its 141 GB, not a budget: ${usable}`);
    assert.match(await page.textContent('#usable-basis'), /device-local/);
    await shots(page, shot, 'issue16-3-measured-device');
  },

  async 'issue 16.4: on a phone the answer comes first and nothing is cut off'({ page, base, shot, log }) {
    await page.setViewportSize(PHONE);
    await page.goto(`${base}?model=qwen3-8b&device=rtx-4090&format=Q4_K_M`);
    await verdictWith(page, 'qwen3-8b');
    const v = await page.locator('#verdict').boundingBox();
    const bar = await page.locator('svg.stacked-bar').boundingBox();
    const inputs = await page.locator('.inputs').boundingBox();
    log(`verdict at ${v.y.toFixed(0)} px, bar at ${bar.y.toFixed(0)} px, inputs at ${inputs.y.toFixed(0)} px (screen 844 px)`);
    assert.ok(v.y + v.height <= PHONE.height, 'the verdict is on the first screen');
    assert.ok(bar.y + bar.height <= PHONE.height, 'the memory bar is on the first screen');
    assert.ok(inputs.y > v.y, 'the inputs come after the answer');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(overflow <= PHONE.width, `the page scrolls sideways: ${overflow} px wide`);
    const cut = await page.$$eval('select, input', (els, w) => els.filter((e) => e.offsetParent && e.getBoundingClientRect().right > w).map((e) => e.id), PHONE.width);
    assert.deepStrictEqual(cut, [], `controls cut off at the right edge: ${cut}`);
    // One line per format-table cell.
    const heights = await page.$$eval('#formats tbody tr', (rows) => rows.map((r) => r.getBoundingClientRect().height));
    const lineHeight = await page.$eval('#formats tbody td', (td) => parseFloat(getComputedStyle(td).lineHeight) || 20);
    log(`format rows ${Math.min(...heights).toFixed(0)}–${Math.max(...heights).toFixed(0)} px high (line ${lineHeight} px)`);
    assert.ok(Math.max(...heights) < 2 * lineHeight, 'a format-table cell wraps onto two lines');
    await shot('issue16-4-phone-first-screen');
    // On the desktop the answer stays where it is as a setting changes.
    await page.setViewportSize(DESKTOP);
    const before = await page.locator('#verdict').boundingBox();
    await page.fill('#context', '8192');
    await page.waitForFunction(() => /ctx=8192/.test(location.search));
    const after = await page.locator('#verdict').boundingBox();
    assert.strictEqual(Math.round(after.y), Math.round(before.y), 'the verdict moved as a setting changed');
  },

  async 'issue 16.5: a first screen that fits, its best format beside the verdict, search boxes filled'({ page, base, shot, log }) {
    await page.goto(base);
    await page.evaluate(() => localStorage.clear());
    await page.goto(base);
    const text = await verdict(page);
    log(text);
    assert.match(text, /: fits/);
    const best = await page.textContent('#best-format-next');
    log(best);
    assert.match(best, /best format that fits/i);
    const b = await page.locator('#best-format-next').boundingBox();
    const v = await page.locator('#verdict').boundingBox();
    assert.ok(b.y - (v.y + v.height) < 40, 'the best format sits right under the verdict');
    assert.strictEqual(await page.inputValue('#model-search'), 'llama-3.1-8b');
    assert.strictEqual(await page.inputValue('#device-search'), 'rtx-4090');
    assert.ok(await page.$('#formats tr.best'), 'the best format is marked in the table');
    await shots(page, shot, 'issue16-5-first-screen');
    // A shared link fills the search boxes too.
    await page.goto(`${base}?model=qwen3-8b&device=h100-sxm`);
    await verdictWith(page, 'qwen3-8b');
    assert.strictEqual(await page.inputValue('#model-search'), 'qwen3-8b');
    assert.strictEqual(await page.inputValue('#device-search'), 'h100-sxm');
    // A format that does not fit offers the best one with a button.
    await page.goto(`${base}?model=llama-3.1-8b&device=m2-10c-16gb&format=bf16`);
    await verdictWith(page, 'does not fit');
    await page.click('#use-best-format');
    await page.waitForFunction(() => /format=/.test(location.search) && !/format=bf16/.test(location.search));
    log(`after "use it": ${await verdict(page)}`);
    assert.match(await verdict(page), /: fits/);
    // This browser's measured device is the first screen's device.
    await page.goto(`${base}?page=reports`);
    await page.setInputFiles('#report-file', PROBE_REPORT);
    await page.click('.report .use-device');
    await page.waitForFunction(() => /my device: measured/.test(document.querySelector('#device-status')?.textContent || ''));
    await page.goto(base);
    await page.waitForFunction(() => /my device: measured/.test(document.querySelector('#device-status')?.textContent || ''));
    await page.evaluate(() => localStorage.clear());
  },

  async 'issue 16.6: search forgives ids, Hub ids, names and Hub addresses'({ page, base, shot, log }) {
    await page.goto(`${base}?model=llama-3.1-8b&device=h100-sxm`);
    await verdictWith(page, 'llama-3.1-8b');
    for (const q of ['Qwen/Qwen3-8B', 'https://huggingface.co/Qwen/Qwen3-8B', 'Qwen3-8B']) {
      await page.fill('#model-search', 'llama-3.1-8b');
      await verdictWith(page, 'llama-3.1-8b');
      await page.fill('#model-search', q);
      log(`${q} → ${(await verdictWith(page, 'qwen3-8b')).slice(0, 50)}`);
    }
    // A few words: Enter takes the best match from the list shown.
    await page.fill('#model-search', 'gemma 27b');
    await page.waitForSelector('#model-search-matches:not([hidden]) button.match');
    await page.press('#model-search', 'Enter');
    log(`gemma 27b → ${(await verdictWith(page, 'gemma')).slice(0, 50)}`);
    await page.fill('#device-search', 'RTX 4090');
    await verdictWith(page, 'RTX 4090');
    await page.fill('#device-search', 'm2 16');
    await page.waitForSelector('#device-search-matches:not([hidden]) button.match');
    await page.press('#device-search', 'Enter');
    const m2 = await verdictWith(page, 'M2');
    log(`m2 16 → ${m2}`);
    assert.match(m2, /M2.*16 GB/);
    await page.fill('#device-search', '4090');
    await page.click('#device-search-matches button.match >> nth=0');
    await verdictWith(page, 'RTX 4090');
    // Nothing matches: said, not silent.
    await page.fill('#model-search', 'zzzz-no-such-model');
    await page.waitForSelector('#model-search-status');
    log(await page.textContent('#model-search-status'));
    assert.match(await page.textContent('#model-search-status'), /no catalog model matches/);
    await page.fill('#model-search', 'someone/private-model');
    assert.match(await page.textContent('#model-search-status'), /Hugging Face tab/);
    await shots(page, shot, 'issue16-6-search');
  },

  async 'issue 16.7: no speed for what cannot run, offload slower, no device count for a laptop'({ page, base, shot, log }) {
    await page.goto(`${base}?model=llama-3.1-70b&device=m2-10c-16gb&format=bf16`);
    log(await verdictWith(page, 'does not fit'));
    assert.match(await page.textContent('#decode'), /—.*does not fit/);
    assert.strictEqual(await page.$('#devices-needed'), null, 'a laptop gets no device count');
    assert.ok(!(await page.textContent('#best-format-next')).includes('more devices'), 'a laptop is told to add devices');
    const rows = await formatRows(page);
    for (const r of rows.filter((row) => row[2] === 'does not fit')) assert.strictEqual(r[3], '—', `${r[0]} has a speed`);
    await shots(page, shot, 'issue16-7-does-not-fit');
    await page.goto(`${base}?model=llama-3.1-8b&device=rtx-4060&format=bf16`);
    log(await verdictWith(page, 'needs offload'));
    const assumptions = await page.textContent('#assumptions');
    assert.match(assumptions, /offload split device_map="auto": .* on the GPU, .* on the host.*decode [\d.]+ tokens\/s/);
    const offloadRow = (await formatRows(page)).find((r) => r[0].startsWith('bf16'));
    const fitRow = (await formatRows(page)).find((r) => r[2] === 'fits');
    log(`bf16 (offload) ${offloadRow[3]} vs ${fitRow[0]} (fits) ${fitRow[3]}`);
    assert.ok(parseFloat(offloadRow[3]) < parseFloat(fitRow[3]), 'offload runs slower than a format that fits');
  },

  async 'issue 16.8: reports a person can read'({ page, base, shot, log }) {
    await page.goto(`${base}?page=reports`);
    await page.setInputFiles('#report-file', [PROBE_REPORT, path.join(DATA, 'reports', 'h200-report.json')]);
    await page.waitForFunction(() => document.querySelectorAll('.report').length === 2);
    await page.waitForSelector('#side-by-side');
    const titles = await page.$$eval('#side-by-side h3', (h) => h.map((e) => e.textContent));
    log(`side-by-side titles: ${titles.join(' | ')}`);
    assert.ok(titles.length >= 3 && titles.every((t) => /\((TFLOP\/s|GB\/s)\)/.test(t)), 'each chart has a title with its unit');
    assert.ok(await page.$('#simulated-models-differ'), 'different simulated models are said to differ');
    const sims = await page.$$eval('#side-by-side td.sim', (t) => t.map((e) => e.textContent));
    log(`decode simulations: ${sims.join(' | ')}`);
    assert.ok(sims.every((t) => /parameter model/.test(t)), 'each decode simulation names its model');
    const dates = await page.$$eval('.report-date', (d) => d.map((e) => e.textContent));
    assert.ok(dates.every((d) => /\d{1,2} [A-Z][a-z]{2} \d{4}, \d\d:\d\d UTC/.test(d)), `dates: ${dates}`);
    // The same kernel at several sizes: labels that tell the bars apart, and no long decimals.
    const charts = await page.$$eval('.report svg.bar-chart', (svgs) => svgs.map((s) => ({
      labels: [...s.querySelectorAll('text.bar-label')].map((t) => t.textContent),
      values: [...s.querySelectorAll('text.bar-value')].map((t) => t.textContent),
    })));
    for (const c of charts) {
      assert.strictEqual(new Set(c.labels).size, c.labels.length, `duplicate bar labels: ${c.labels}`);
      // Three significant digits: 36.8, 3010, 0.0123 — never 36.758.
      for (const v of c.values) assert.ok(!/[1-9]\.\d{3}/.test(v), `more digits than the measurement holds: ${v}`);
    }
    assert.ok(await page.$('.report table.datasheet'), 'the H200 is compared to its datasheet');
    log(`H200 vs datasheet: ${(await page.textContent('.report table.datasheet')).replace(/\s+/g, ' ').slice(0, 160)}`);
    await shots(page, shot, 'issue16-8-reports');
  },

  async 'issue 16.9: a loading shell before the wasm, and no command-line wording'({ page, base, shot, log }) {
    const html = await (await page.request.get(base)).text();
    assert.match(html, /id="loading"/);
    assert.match(html, /Loading the calculator/);
    // Pre-compressed copies for static hosts, each smaller than the wasm itself.
    const wasm = html.match(/["']\.?\/?([^"']+_bg\.wasm)["']/)[1];
    const raw = (await (await page.request.get(base + wasm)).body()).length;
    for (const ext of ['.gz', '.br']) {
      const r = await page.request.get(base + wasm + ext);
      assert.strictEqual(r.status(), 200, `${wasm}${ext} is missing from the dist`);
      const size = (await r.body()).length;
      log(`${wasm}${ext}: ${size} bytes (raw ${raw})`);
      assert.ok(size < raw / 2, `${ext} is not compressed`);
    }
    await page.goto(base);
    await verdict(page);
    assert.strictEqual(await page.$('#loading'), null, 'the loading message goes once the app is up');
    // Errors name the site's controls, never a flag.
    await page.goto(`${base}?model=llama-3.1-8b&device=rtx-4090&mode=lora&layers=40`);
    await page.waitForSelector('#result-error');
    const err = await page.textContent('#result-error');
    log(err);
    assert.match(err, /LoRA layers/);
    assert.ok(!err.includes('--'), `command-line wording: ${err}`);
    await page.goto(`${base}?model=llama-3.1-8b&device=rtx-4090&batch=0`);
    await page.waitForSelector('#result-error');
    const batch = await page.textContent('#result-error');
    log(batch);
    assert.ok(!batch.includes('--'), `command-line wording: ${batch}`);
    // The shell as a slow connection sees it: the HTML alone, before any script runs.
    await page.route('**/*.wasm', () => {});
    await page.goto(base, { waitUntil: 'domcontentloaded' });
    assert.ok(await page.isVisible('#loading'), 'the loading message shows while the wasm loads');
    await shots(page, shot, 'issue16-9-loading');
    await page.unroute('**/*.wasm');
  },

  async 'issue 16: every setting of headroom fit is in the form and the link'({ page, base, shot, log }) {
    await page.goto(`${base}?model=llama-3.1-8b&device=rtx-4090`);
    await verdictWith(page, 'llama-3.1-8b');
    // Training controls show only for the modes they apply to.
    for (const id of ['#checkpointing', '#lora-rank', '#lora-targets', '#optimizer', '#precision']) {
      assert.strictEqual(await page.isVisible(id), false, `${id} shows in inference mode`);
    }
    await page.selectOption('#mode', 'lora');
    assert.strictEqual(await page.isVisible('#optimizer'), false, 'the optimizer shows in LoRA mode');
    await page.fill('#lora-rank', '32');
    await page.fill('#lora-targets', 'q,v');
    await page.fill('#lora-layers', 'last:8');
    await page.check('#checkpointing');
    await page.waitForFunction(() => ['mode=lora', 'rank=32', 'targets=q%2Cv', 'layers=last%3A8', 'ckpt=1'].every((k) => location.search.includes(k)));
    assert.match(await page.textContent('#runtime-kv-mode'), /lora:r=32:targets=q,v:ckpt:layers=24-31/);
    await page.selectOption('#mode', 'full');
    await page.selectOption('#optimizer', 'adam8bit');
    await page.selectOption('#precision', 'fp32');
    await page.waitForFunction(() => ['mode=full', 'opt=adam8bit', 'prec=fp32'].every((k) => location.search.includes(k)));
    assert.match(await page.textContent('#runtime-kv-mode'), /full:fp32:adam8bit:ckpt/);
    await page.selectOption('#mode', 'inference');
    await page.selectOption('#format', 'Q4_K_M');
    await page.selectOption('#runtime', 'llama.cpp');
    await page.selectOption('#kv', 'q8_0');
    await page.fill('#device-count', '2');
    await page.fill('#host-memory', '64');
    await page.waitForFunction(() => ['runtime=llama.cpp', 'kv=q8_0', 'n=2', 'host=64'].every((k) => location.search.includes(k)));
    assert.match(await page.textContent('#runtime-kv-mode'), /llama\.cpp, q8_0, inference/);
    const url = page.url();
    const before = await verdict(page);
    await page.goto(url);
    assert.strictEqual(await verdict(page), before, 'the link reproduces the answer');
    // The Apple wired limit.
    await page.goto(`${base}?model=llama-3.1-8b&device=m2-10c-16gb&format=Q4_K_M`);
    await verdictWith(page, 'M2');
    await page.fill('#wired-limit', '14000');
    await page.waitForFunction(() => /wired=14000/.test(location.search));
    assert.match(await page.textContent('#usable-basis'), /wired_limit/);
    // A custom device and a model by size, with their limits said.
    await page.click('#custom-device summary');
    await page.fill('#custom-memory', '48');
    await page.fill('#custom-bandwidth', '960');
    await page.fill('#custom-tflops', '180');
    await page.waitForFunction(() => ['cmem=48', 'cbw=960', 'ctflops=180'].every((k) => location.search.includes(k)));
    await page.click('#tab-size');
    await page.fill('#model-size', '32B');
    await page.waitForFunction(() => /size=32B/.test(location.search));
    const sized = await verdictWith(page, 'custom device');
    log(sized);
    assert.match(sized, /32\.000 B-parameter model/);
    assert.match(await page.textContent('#approximate'), /model by size/);
    const customUrl = page.url();
    await page.goto(customUrl);
    assert.strictEqual(await verdictWith(page, 'custom device'), sized);
    await page.fill('#custom-memory', '0');
    await page.waitForSelector('#result-error');
    assert.match(await page.textContent('#result-error'), /Custom device memory/);
    await shots(page, shot, 'issue16-every-setting');
  },
};
