// "What can I run?": a device → every catalog model that fits, ranked (core's rank_models, the
// ranking `headroom models --fits` prints), its budget, its link, a dropped report, bad filters;
// and the launch command and the devices that hold the model under the calculator's result.
'use strict';
const assert = require('assert');
const fs = require('fs');
const { PROBE_REPORT } = require('../lib');

/** Wait until the ranking shows a table or says why it is empty or wrong; return which. */
async function ranking(page) {
  await page.waitForSelector('#ranking-table tbody tr, #ranking-empty, #ranking-error', { timeout: 30000 });
  if (await page.$('#ranking-error')) return 'error';
  if (await page.$('#ranking-empty')) return 'empty';
  return 'table';
}

/** The model ids of the ranked rows, in order. */
async function rankedIds(page) {
  return page.$$eval('#ranking-table tbody tr', (rows) => rows.map((r) => r.getAttribute('data-model')));
}

/** At phone width (390 px) nothing may widen the page past the screen; a screenshot of it. */
async function fitsPhone(page, shot, label) {
  const before = page.viewportSize();
  await page.setViewportSize({ width: 390, height: 844 });
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  await shot(`${label}-phone`);
  if (before) await page.setViewportSize(before);
  assert.ok(width <= 390, `${label}: the page is ${width} px wide on a 390 px phone`);
}

module.exports = {
  async 'what can I run: a catalog device ranks every model that fits, within budget'({ page, base, shot, log }) {
    await page.goto(base);
    await page.click('#nav-canrun');
    await page.waitForSelector('#can-run');
    await page.selectOption('#canrun-device', 'rtx-4090');
    await page.waitForFunction(() => document.location.search.includes('device=rtx-4090'));
    assert.strictEqual(await ranking(page), 'table');
    const ids = await rankedIds(page);
    log(`rtx-4090: ${ids.length} models fit, largest first: ${ids.slice(0, 5).join(', ')} …`);
    assert.ok(ids.length > 20, `${ids.length} models ranked`);
    assert.match(await page.textContent('#ranking-device'), /RTX 4090 · inference · 4096 tokens of context · formats of ≥ 3 bits per weight · \d+ of \d+ models fit/);
    // Largest first: the params column never grows down the list.
    await shot('can-run-rtx-4090');
    // Budget: ranking the whole catalog for one device takes < 100 ms. The first ranking after
    // load pays for the engine's first optimisation (reported, not counted).
    const times = [];
    const lines = [];
    let warmup = null;
    for (const d of ['rtx-4060', 'h200', 'm2-max-38c-96gb', 'rtx-3090', 'l40s', 'rtx-4090']) {
      await page.selectOption('#canrun-device', d);
      await page.waitForFunction((id) => document.location.search.includes(`device=${id}`), d);
      await ranking(page);
      const ms = Number(await page.getAttribute('#ranking', 'data-rank-ms'));
      lines.push(`${d} ${ms} ms`);
      if (warmup === null) { warmup = ms; continue; }
      times.push(ms);
    }
    const sorted = [...times].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    const over = times.filter((t) => t >= 100).length;
    log(`whole-catalog ranking per device change: ${lines.join(', ')} (first is warm-up); median ${median} ms, max ${sorted[sorted.length - 1]} ms, ${over} of ${times.length} at or over 100 ms (budget 100 ms)`);
    // On a shared 2-core CI machine one change can catch a GC pause: the median must be under
    // budget and at most one change of five over it.
    assert.ok(median < 100 && over <= 1, `ranking over budget: ${lines.join(', ')}`);
  },

  async 'what can I run: sort, filters and a shareable link'({ page, base, log }) {
    await page.goto(`${base}?page=canrun&device=h200`);
    assert.strictEqual(await ranking(page), 'table');
    await page.selectOption('#canrun-sort', 'speed');
    await page.waitForFunction(() => document.location.search.includes('sort=speed'));
    await page.selectOption('#canrun-family', 'Qwen3');
    await page.selectOption('#canrun-arch', 'moe');
    await page.waitForFunction(() => document.location.search.includes('arch=moe'));
    assert.strictEqual(await ranking(page), 'table');
    const ids = await rankedIds(page);
    log(`h200, Qwen3 MoE, fastest first: ${ids.join(', ')}`);
    assert.ok(ids.length >= 1 && ids.every((id) => id.startsWith('qwen3-') && /a\d+b/.test(id)), ids.join(', '));
    const rates = await page.$$eval('#ranking-table tbody tr td:nth-child(7)', (c) => c.map((x) => parseFloat(x.textContent)));
    assert.ok(rates.every((r, i) => i === 0 || rates[i - 1] >= r), `fastest first: ${rates.join(', ')}`);
    // The link reopens the same ranking.
    const link = page.url();
    const other = await page.context().newPage();
    await other.goto(link);
    assert.strictEqual(await ranking(other), 'table');
    assert.deepStrictEqual(await rankedIds(other), ids);
    assert.strictEqual(await other.inputValue('#canrun-sort'), 'speed');
    await other.close();
    // A row opens the calculator with that model, format and device.
    const first = ids[0];
    await page.click(`#ranking-table tbody tr[data-model="${first}"] a`);
    await page.waitForSelector('#verdict', { timeout: 30000 });
    const search = await page.evaluate(() => document.location.search);
    assert.ok(search.includes(`model=${first}`) && search.includes('device=h200'), search);
  },

  async 'calculator: llama.cpp flash attention, micro-batch and unified cache, from the form and the link'({ page, base, log }) {
    await page.goto(`${base}?model=llama-3.2-1b&device=rtx-4090&format=Q4_K_M&ctx=32768`);
    await page.waitForSelector('#launch-command', { timeout: 30000 });
    assert.match(await page.textContent('#launch-command'), /-fa on/);
    // Flash attention off: f32 scores in the compute buffer, the command and the link say so.
    await page.selectOption('#flash-attn', 'off');
    await page.waitForFunction(() => /-fa off/.test(document.querySelector('#launch-command')?.textContent || ''), null, { timeout: 30000 });
    assert.match(page.url(), /[?&]fa=off(&|$)/);
    assert.match(await page.textContent('#assumptions'), /f32 scores/);
    // A larger micro-batch reaches the command.
    await page.fill('#ubatch', '1024');
    await page.waitForFunction(() => /-ub 1024/.test(document.querySelector('#launch-command')?.textContent || ''), null, { timeout: 30000 });
    assert.match(page.url(), /[?&]ub=1024(&|$)/);
    log((await page.textContent('#launch-command')).trim());
    // A quantized V cache needs flash attention: an inline error naming the control.
    await page.goto(`${base}?model=llama-3.2-1b&device=rtx-4090&format=Q4_K_M&kv=q8_0&fa=off`);
    await page.waitForSelector('#result-error', { timeout: 30000 });
    assert.match(await page.textContent('#result-error'), /Flash attention/);
    assert.doesNotMatch(await page.textContent('#result-error'), /--/);
    assert.strictEqual(await page.inputValue('#flash-attn'), 'off');
  },

  async 'what can I run: a dropped probe report, and filters that leave nothing'({ page, base, log }) {
    await page.goto(`${base}?page=canrun`);
    await ranking(page);
    const report = JSON.parse(fs.readFileSync(PROBE_REPORT, 'utf8'));
    const adapter = report.adapters[report.selected_adapter ?? 0].name;
    await page.setInputFiles('#canrun-report', PROBE_REPORT);
    await page.waitForFunction(() => document.location.search.includes('devspec='));
    const kind = await ranking(page);
    const heading = await page.textContent('#ranking-device');
    log(`${adapter}: ${kind}; ${heading}`);
    assert.ok(heading.includes(adapter), heading);
    if (kind === 'empty') {
      // lavapipe's sweep measures a small usable size: the page says why nothing is listed.
      assert.match(await page.textContent('#ranking-empty'), /nothing fits .* the smallest, .* needs /);
    } else {
      assert.strictEqual(kind, 'table');
    }
    // The Reports page sends a dropped report's device here too.
    await page.goto(`${base}?page=reports`);
    await page.setInputFiles('#report-file', PROBE_REPORT);
    await page.click('.report .can-run-device');
    await page.waitForSelector('#can-run');
    await ranking(page);
    assert.ok((await page.textContent('#ranking-device')).includes(adapter));
    // A speed no model reaches is an inline error naming the control.
    await page.goto(`${base}?page=canrun&device=rtx-4090`);
    await ranking(page);
    await page.fill('#canrun-mintps', '100000');
    await page.dispatchEvent('#canrun-mintps', 'change');
    await page.waitForSelector('#ranking-error', { timeout: 30000 });
    const err = (await page.textContent('#ranking-error')).trim();
    log(err);
    assert.match(err, /Min\. tokens\/s .*the fastest does/);
  },

  async 'what can I run: no 1- or 2-bit files unless the floor is lowered'({ page, base, shot, log }) {
    const formats = () => page.$$eval('#ranking-table tbody tr', (rows) => rows.map((r) => r.children[3].textContent.trim()));
    const low = (f) => /^(IQ1|IQ2|Q2_K)/.test(f);
    await page.goto(`${base}?page=canrun&device=rtx-3060-12gb`);
    assert.strictEqual(await ranking(page), 'table');
    const floor3 = await formats();
    assert.ok(!floor3.some(low), floor3.join(' '));
    assert.match(await page.textContent('#ranking-device'), /formats of ≥ 3 bits per weight/);
    await fitsPhone(page, shot, 'can-run-ranking');
    await page.selectOption('#canrun-minbits', '1.5');
    await page.waitForFunction(() => document.location.search.includes('minbits=1.5'));
    await page.waitForFunction(() => /≥ 1\.5 bits/.test(document.querySelector('#ranking-device')?.textContent || ''));
    const any = await formats();
    log(`floor 3: ${floor3.slice(0, 3).join(', ')} · floor 1.5: ${any.slice(0, 3).join(', ')}`);
    assert.ok(any.some(low), any.join(' '));
  },

  async 'calculator: the launch command under the result'({ page, base, log }) {
    await page.goto(`${base}?model=qwen3-8b&device=rtx-4090&format=Q4_K_M`);
    await page.waitForSelector('#launch-command', { timeout: 30000 });
    const cmd = (await page.textContent('#launch-command')).trim();
    log(cmd);
    assert.match(cmd, /^llama-server -m Qwen3-8B-Q4_K_M\.gguf -c 4096 -ngl 99 -fa on -ctk f16 -ctv f16/);
    // What does it need: the catalog devices that hold it, per class, on request.
    await page.click('#needs summary');
    await page.waitForSelector('#needs-table tbody tr', { timeout: 30000 });
    const classes = await page.$$eval('#needs-table tbody tr', (rows) => rows.map((r) => r.getAttribute('data-class')));
    assert.deepStrictEqual(classes, ['Apple', 'NVIDIA consumer', 'NVIDIA datacenter', 'AMD', 'Intel']);
    log((await page.textContent('#needs-summary')).trim());
    // Nothing to launch when it does not fit.
    await page.goto(`${base}?model=llama-3.1-70b&device=rtx-4060&format=bf16`);
    await page.waitForSelector('#verdict', { timeout: 30000 });
    assert.strictEqual(await page.$('#launch-command'), null);
  },

  async 'calculator: no device chosen answers what the model needs'({ page, base, shot, log }) {
    await page.goto(`${base}?model=qwen3-8b&device=rtx-4090&format=Q4_K_M`);
    await page.waitForSelector('#verdict', { timeout: 30000 });
    await page.click('#device-any');
    await page.waitForSelector('#result #needs-table tbody tr', { timeout: 30000 });
    assert.match(page.url(), /[?&]device=any(&|$)/);
    assert.match((await page.textContent('#needs-heading')).trim(), /^What does qwen3-8b need\?$/i);
    const summary = (await page.textContent('#result #needs-summary')).trim();
    log(summary);
    assert.match(summary, /needs [\d.]+ GiB( to [\d.]+ GiB)? on one device in Q4_K_M at 4,?096 tokens of context/);
    const classes = await page.$$eval('#result #needs-table tbody tr', (rows) => rows.map((r) => r.getAttribute('data-class')));
    assert.deepStrictEqual(classes, ['Apple', 'NVIDIA consumer', 'NVIDIA datacenter', 'AMD', 'Intel']);
    assert.strictEqual(await page.$('#verdict'), null, 'no verdict without a device');
    const ms = Number(await page.getAttribute('#result', 'data-recompute-ms'));
    log(`devices that fit, whole catalog: ${ms.toFixed(1)} ms`);
    await shot('calculator-no-device');
    await fitsPhone(page, shot, 'calculator-no-device');
    // The link reopens the same view; a change of context recomputes it.
    await page.goto(page.url());
    await page.waitForSelector('#result #needs-table tbody tr', { timeout: 30000 });
    // Choosing a device brings the verdict back.
    await page.fill('#device-search', 'rtx-4090');
    await page.waitForSelector('#verdict', { timeout: 30000 });
    assert.match(page.url(), /[?&]device=rtx-4090(&|$)/);
  },

  async 'calculator: users on a server and the macOS release, from the form and the link'({ page, base, log }) {
    // A serving runtime shows how many users fit at the context, by default.
    await page.goto(`${base}?model=qwen3-8b&device=rtx-4090&format=Q4_K_M&runtime=llama.cpp`);
    await page.waitForSelector('#serving-max-users', { timeout: 30000 });
    const max = (await page.textContent('#serving-max-users')).trim();
    log(max);
    assert.match(max, /^\d[\d,]* users fit at 4,?096 tokens each/);
    // Users asked in the form reach the answer and the link.
    await page.fill('#users', '3');
    await page.waitForFunction(() => /^3 users:/.test(document.querySelector('#serving-at-users')?.textContent.trim() || ''), null, { timeout: 30000 });
    assert.match(page.url(), /[?&]users=3(&|$)/);
    // The macOS release sets a Mac's GPU share: a 64 GB Mac gets more under 26 than under 15.
    const usable = async (macos) => {
      await page.goto(`${base}?model=qwen3-8b&device=m1-max-32c-64gb&format=Q4_K_M&macos=${macos}`);
      await page.waitForSelector('#verdict', { timeout: 30000 });
      assert.strictEqual(await page.inputValue('#macos'), String(macos));
      await page.waitForSelector('#usable', { timeout: 30000 });
      const text = (await page.textContent('#usable')).trim();
      assert.match(text, /GiB$/);
      return text.match(/([\d.]+)/)[1];
    };
    const older = await usable(15);
    const newer = await usable(26);
    log(`64 GB Mac usable: macOS 15 ${older} GiB, macOS 26 ${newer} GiB`);
    assert.ok(Number(newer) > Number(older), `${newer} > ${older}`);
    // A release Apple silicon never ran is an inline error naming the control.
    await page.goto(`${base}?model=qwen3-8b&device=m1-max-32c-64gb&macos=19`);
    await page.waitForSelector('.error', { timeout: 30000 });
    assert.match(await page.textContent('body'), /macOS release: .*11 to 15 and 26/);
  },

  async 'calculator: vision projector and draft model beside the model, from the form and the link'({ page, base, log }) {
    // llama.cpp keeps gemma-3's vision tower in a separate mmproj file: off by default, a line
    // of its own (and of the total) when asked, and --mmproj in the launch command.
    await page.goto(`${base}?model=gemma-3-12b&device=m4-pro-20c-48gb&format=Q4_K_M&runtime=llama.cpp`);
    await page.waitForSelector('#verdict', { timeout: 30000 });
    assert.strictEqual(await page.$('tr.extra-model'), null, 'no extra model unless asked');
    await page.check('#mmproj');
    await page.waitForFunction(() => /[?&]mmproj=1(&|$)/.test(location.search), null, { timeout: 30000 });
    await page.waitForSelector('tr.extra-model', { timeout: 30000 });
    const mm = (await page.textContent('tr.extra-model')).trim();
    log(mm);
    assert.match(mm, /Vision projector \(f16\)/);
    await page.waitForSelector('#launch-command', { timeout: 30000 });
    assert.match(await page.textContent('#launch-command'), /--mmproj mmproj-gemma-3-12b-it-f16\.gguf/);
    // A draft model with a stated acceptance rate: its line, the step's cost and the speed.
    await page.goto(`${base}?model=llama-3.1-8b&device=rtx-4090&format=Q4_K_M&runtime=llama.cpp`);
    await page.waitForSelector('#verdict', { timeout: 30000 });
    await page.selectOption('#draft', 'llama-3.2-1b');
    await page.fill('#draft-tokens', '4');
    await page.fill('#draft-acceptance', '0.7');
    await page.waitForFunction(() => ['draft=llama-3.2-1b', 'dtokens=4', 'daccept=0.7'].every((k) => location.search.includes(k)), null, { timeout: 30000 });
    await page.waitForFunction(() => /at your acceptance rate 0\.7/.test(document.querySelector('#speculation')?.textContent || ''), null, { timeout: 30000 });
    const sp = (await page.textContent('#speculation')).trim();
    log(sp);
    assert.match(sp, /^4 draft tokens \+ one check: [\d.]+ ms/);
    assert.match(await page.textContent('tr.extra-model'), /Draft llama-3\.2-1b \(Q4_K_M\)/);
    assert.match(await page.textContent('#launch-command'), /-md Llama-3\.2-1B-Q4_K_M\.gguf -ngld 99 --draft-max 4/);
    // The link reproduces it.
    const url = page.url();
    await page.goto(url);
    await page.waitForSelector('#speculation', { timeout: 30000 });
    assert.strictEqual((await page.textContent('#speculation')).trim(), sp);
    // A draft with another tokenizer is an inline error naming the control, no flags.
    await page.goto(`${base}?model=llama-3.1-8b&device=rtx-4090&format=Q4_K_M&draft=qwen3-0.6b`);
    await page.waitForSelector('.error', { timeout: 30000 });
    const err = await page.textContent('body');
    assert.match(err, /Draft model.*vocabulary/);
    assert.doesNotMatch(err, /--draft/);
  },
};
