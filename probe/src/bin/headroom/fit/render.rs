//! `headroom fit`'s human output: the table for one format (header, model parts, memory,
//! verdict, advice, training lines) and the side-by-side comparison of `--quant all`.

use headroom_core::{
    advice::{RowOutcome, TrainingAdvice},
    answer::Answer,
    estimate::{Estimate, Verdict},
    extra_models::ExtraModelKind,
    training::{Mode, describe_layers},
};

use super::table::{Align, Table, gib, thousands, tokens_per_s};

use super::OutputContext;

/// `part` as a percentage of `whole`.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "n/a".to_owned()
    } else {
        format!("{:.0}%", part as f64 * 100.0 / whole as f64)
    }
}

/// The verdict in words a user acts on.
fn verdict_words(estimate: &Estimate) -> String {
    let usage = format!(
        "{} of {} usable ({})",
        gib(estimate.per_device_bytes),
        gib(estimate.usable_bytes),
        percent(estimate.per_device_bytes, estimate.usable_bytes)
    );
    let needed = estimate
        .devices_needed
        .filter(|n| *n > estimate.device_count.max(1))
        .map(|n| format!("; needs at least {n} such devices (--devices {n})"))
        .unwrap_or_default();
    match estimate.verdict {
        Verdict::Fits => format!("fits — {usage}"),
        Verdict::FitsTightly => {
            format!("fits tightly — {usage}; over 90% leaves little room for anything else")
        }
        Verdict::NeedsOffload => match &estimate.offload {
            Some(plan) => offload_words(&usage, plan),
            None => format!(
                "does not fit in GPU memory — {usage}; runs only with layers offloaded to the \
                 CPU (much slower){needed}"
            ),
        },
        Verdict::DoesNotFit => format!("does not fit — {usage}{needed}"),
    }
}

/// The needs-offload verdict with its split: where the bytes go and how fast it runs, and the
/// other way to split.
fn offload_words(usage: &str, plan: &headroom_core::offload::OffloadPlan) -> String {
    let c = &plan.chosen;
    let mut words = format!(
        "needs offload — {usage} on the GPU alone; with {}: {} GPU + {} host (of {} / {}), \
         ~{} decode, ~{} prefill — {}",
        c.split.flag(),
        gib(c.gpu_bytes),
        gib(c.host_bytes),
        gib(c.gpu_capacity_bytes),
        gib(c.host_capacity_bytes),
        tokens_per_s(c.decode_tokens_per_s),
        tokens_per_s(c.prefill_tokens_per_s),
        c.description
    );
    if let Some(a) = &plan.alternative {
        words.push_str(&format!(
            "; alternative {}: {} GPU + {} host, ~{} decode{}",
            a.split.flag(),
            gib(a.gpu_bytes),
            gib(a.host_bytes),
            tokens_per_s(a.decode_tokens_per_s),
            if a.fits { "" } else { " (does not fit)" }
        ));
    }
    words
}

/// `~rate` or `n/a`.
fn approx_rate(rate: f64) -> String {
    let text = tokens_per_s(rate);
    if text == "n/a" {
        text
    } else {
        format!("~{text}")
    }
}

/// Short verdict for the comparison table.
fn verdict_short(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Fits => "fits",
        Verdict::FitsTightly => "fits tightly",
        Verdict::NeedsOffload => "needs offload",
        Verdict::DoesNotFit => "does not fit",
    }
}

/// The training settings that fit, one line each.
fn training_lines(out: &mut String, t: &TrainingAdvice) {
    use std::fmt::Write;
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let _ = writeln!(out, "training settings that fit:");
    let _ = writeln!(
        out,
        "  as given: \
         {}",
        yes_no(t.fits_as_given)
    );
    if !t.fits_as_given {
        let _ = writeln!(
            out,
            "  with gradient checkpointing:    {}",
            yes_no(t.fits_with_checkpointing)
        );
    }
    let or_none = |v: Option<u64>| v.map_or_else(|| "none".to_owned(), thousands);
    let _ = writeln!(
        out,
        "  largest batch at this length:   {}",
        or_none(t.max_batch)
    );
    let _ = writeln!(
        out,
        "  longest sequence at batch 1:    {} tokens",
        or_none(t.max_sequence_tokens)
    );
    if let Some(rank) = t.max_lora_rank {
        let _ = writeln!(
            out,
            "  largest LoRA rank: \
         {rank}"
        );
    }
    if let Some(targets) = &t.lora_targets {
        let _ = writeln!(
            out,
            "  widest LoRA targets: \
             {}",
            targets.join(",")
        );
    }
    if let Some(k) = t.max_lora_last_layers {
        let ckpt = if t.lora_last_layers_need_checkpointing {
            " (with checkpointing)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  LoRA on the last k layers:      k = {k}{ckpt} (--lora-layers last:{k})"
        );
    }
    if !t.suggestions.is_empty() {
        let _ = writeln!(out, "suggestions:");
        for s in &t.suggestions {
            let _ = writeln!(out, "  - {s}");
        }
    }
}

/// Effective bits per stored weight: weight bytes × 8 ÷ parameters.
fn bits_per_weight(estimate: &Estimate) -> String {
    if estimate.params_total == 0 {
        return "n/a".to_owned();
    }
    format!(
        "{:.2}",
        estimate.weights_bytes as f64 * 8.0 / estimate.params_total as f64
    )
}

impl OutputContext<'_> {
    /// The header lines: model, settings, device.
    fn header(&self, out: &mut String, answer: &Answer, runtime: Option<&str>) {
        let estimate = &answer.estimate;
        use std::fmt::Write;
        let spec = self.spec;
        let active = if estimate.params_active != estimate.params_total {
            format!(", {} active", thousands(estimate.params_active))
        } else {
            String::new()
        };
        let approximate = if spec.approximate {
            " [approximate: unknown architecture, generic fields]"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{} — {} parameters{active}{approximate} (from {})",
            spec.name,
            thousands(estimate.params_total),
            self.source
        );
        let runtime = runtime.map(|r| format!(" · {r}")).unwrap_or_default();
        let kv = &estimate.kv_cache_dtype;
        let layers = match &answer.request.mode {
            Mode::Lora(l) | Mode::Qlora(l) => format!(
                " on layers {}",
                describe_layers(l.layers.as_deref(), spec.num_layers)
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "context {} tokens · batch {} · {}{layers}{runtime} · KV cache {kv}",
            thousands(estimate.context),
            estimate.batch,
            self.checked.mode_name,
        );
        let count = if self.args.device_count > 1 {
            format!(" × {}", self.args.device_count)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "device: {} ({} memory){count}",
            estimate.device,
            gib(self.device.memory_bytes)
        );
        if self.measured {
            let _ = writeln!(out, "device figures: {}", self.device.source);
        }
        if let Some(how) = self.this_machine {
            let _ = writeln!(out, "{how}");
        }
    }

    /// The model part by part: parameters per component, the layer kinds, the cache per mixer
    /// kind, and what is approximated.
    fn model_parts(&self, out: &mut String, answer: &Answer) {
        use std::fmt::Write;
        let mut parts = Table::new(&[
            ("part", Align::Left),
            ("parameters", Align::Right),
            ("active", Align::Right),
        ]);
        for c in &answer.components {
            let name = if c.in_total {
                c.kind.name().replace('_', " ")
            } else {
                format!("{} (not loaded)", c.kind.name().replace('_', " "))
            };
            parts.row(vec![name, thousands(c.params), thousands(c.active_params)]);
        }
        out.push('\n');
        out.push_str(&parts.render());
        let kinds: Vec<String> = answer
            .layer_kinds
            .iter()
            .map(|k| format!("{} × {} + {}", k.layers, k.mixer, k.mlp))
            .collect();
        let _ = writeln!(out, "layers: {}", kinds.join(", "));
        for c in answer
            .cache
            .iter()
            .filter(|c| c.bytes_per_token > 0 || c.state_bytes_per_sequence > 0)
        {
            let per_token = if c.bytes_per_token > 0 {
                let limit = c
                    .token_limit
                    .map(|t| format!(", at most {} tokens", thousands(t)))
                    .unwrap_or_default();
                format!("{} B per token{limit}", thousands(c.bytes_per_token))
            } else {
                "no per-token cache".to_owned()
            };
            let state = if c.state_bytes_per_sequence > 0 {
                format!(
                    " + {} B state per sequence",
                    thousands(c.state_bytes_per_sequence)
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "cache of {} {} layers: {per_token}{state}",
                c.layers, c.mixer
            );
        }
        if answer.text_only {
            let _ = writeln!(out, "text only: vision/audio parts left out (--text-only)");
        }
        if answer.with_mtp {
            let _ = writeln!(
                out,
                "MTP layers loaded for speculative decoding (--mtp): counted as decoder layers"
            );
        }
        if !answer.exact {
            let _ = writeln!(out, "approximate:");
            for a in &answer.approximations {
                let _ = writeln!(out, "  - {a}");
            }
        }
    }

    /// One format in full: components, verdict, speed, advice, assumptions.
    pub(super) fn human(&self, out: &mut String, answer: &Answer) {
        use std::fmt::Write;
        let e = &answer.estimate;
        let advice = answer;
        self.header(out, answer, Some(&e.runtime));
        let _ = writeln!(
            out,
            "format: {} ({} bits per weight)\n",
            e.quant,
            bits_per_weight(e)
        );
        let mut table = Table::new(&[
            ("component", Align::Left),
            ("GiB", Align::Right),
            ("bytes", Align::Right),
        ]);
        let mut row = |name: &str, bytes: u64| {
            table.row(vec![
                name.to_owned(),
                format!("{:.2}", bytes as f64 / headroom_core::units::GIB as f64),
                thousands(bytes),
            ]);
        };
        row("weights", e.weights_bytes);
        row("KV cache", e.kv_cache_bytes);
        row("activations", e.activation_bytes);
        row("runtime overhead", e.overhead_bytes);
        if !matches!(answer.request.mode, Mode::Inference) {
            row("training", e.training_bytes);
        }
        for m in &answer.extra_models {
            let name = match m.kind {
                ExtraModelKind::Mmproj if m.weights_bytes > 0 => {
                    format!("vision projector ({})", m.format)
                }
                ExtraModelKind::Mmproj => "one image's encoder compute".to_owned(),
                ExtraModelKind::Draft => format!("draft {} ({})", m.name, m.format),
            };
            row(&name, m.total_bytes);
        }
        row("total", e.total_bytes);
        if self.args.device_count > 1 {
            row(
                &format!("per device (of {})", self.args.device_count),
                e.per_device_bytes,
            );
        }
        row("usable (one device)", e.usable_bytes);
        out.push_str(&table.render());
        self.model_parts(out, answer);
        let _ = writeln!(out, "\nverdict: {}", verdict_words(e));
        if let Some(check) = e.largest_buffer.as_ref().filter(|c| c.exceeds) {
            let _ = writeln!(out, "buffer:  {}", check.statement());
        }
        if let Some(limit) = e
            .mps_high_watermark_bytes
            .filter(|_| e.per_device_bytes > e.usable_bytes)
        {
            let _ = writeln!(
                out,
                "MPS:     PyTorch's MPS allocator stops at {} (1.7 × working set){}",
                gib(limit),
                if e.per_device_bytes > limit {
                    ": this run ends in \"MPS backend out of memory\""
                } else {
                    "; below that macOS pages GPU memory instead"
                }
            );
        }
        let speed = if matches!(answer.request.mode, Mode::Inference) {
            format!(
                "{} tokens/s decode per sequence, {} tokens/s prefill (estimates{})",
                approx_rate(e.decode_tokens_per_s),
                approx_rate(e.prefill_tokens_per_s),
                match (&e.offload, e.fits) {
                    (Some(plan), _) if e.verdict != Verdict::DoesNotFit =>
                        format!("; split {} between GPU and host", plan.chosen.split.flag()),
                    (_, true) => String::new(),
                    _ => "; with everything in GPU memory, which it is not".to_owned(),
                }
            )
        } else {
            "not estimated for training".to_owned()
        };
        let _ = writeln!(out, "speed:   {speed}");
        if let Some(sp) = &answer.speculation {
            let draft_speed = answer
                .extra_models
                .iter()
                .find_map(|m| m.decode_tokens_per_s)
                .unwrap_or(0.0);
            let gain = match (sp.acceptance, sp.expected_tokens_per_s) {
                (Some(a), Some(tps)) => format!(
                    "; at acceptance {a} (yours): {} tokens/s against {} without",
                    approx_rate(tps),
                    approx_rate(sp.plain_tokens_per_s)
                ),
                _ => "; no speed-up given without --draft-acceptance".to_owned(),
            };
            let _ = writeln!(
                out,
                "draft:   {} tokens/s alone; a step of {} draft tokens + one check takes {:.1} ms{gain}",
                approx_rate(draft_speed),
                sp.draft_tokens,
                sp.step_ms
            );
        }
        if let Some(serving) = &answer.serving {
            serving_lines(out, serving);
        }
        let longest = match advice.longest_context {
            Some(tokens) => format!(
                "{} tokens (model maximum {})",
                thousands(tokens),
                thousands(self.spec.max_context)
            ),
            None => "none — not even a short context fits with these settings".to_owned(),
        };
        let _ = writeln!(out, "longest context that fits: {longest}");
        let best = match &advice.best_format {
            Some(choice) => format!(
                "{} ({}, {} total, {} tokens/s decode, {})",
                choice.format,
                verdict_short(choice.verdict),
                gib(choice.total_bytes),
                approx_rate(choice.decode_tokens_per_s),
                choice.runtime
            ),
            None => "none — no format fits at this context and batch".to_owned(),
        };
        let _ = writeln!(out, "best format that fits:     {best}");
        if let Some(training) = &advice.training {
            training_lines(out, training);
        }
        if let Some(launch) = &answer.launch {
            let _ = writeln!(out, "\nlaunch ({}):", launch.runtime);
            for line in launch.command.lines() {
                let _ = writeln!(out, "  {line}");
            }
            for note in &launch.notes {
                let _ = writeln!(out, "  # {note}");
            }
        }
        if !e.assumptions.is_empty() {
            let _ = writeln!(out, "\nassumptions:");
            for assumption in &e.assumptions {
                let _ = writeln!(out, "  - {assumption}");
            }
        }
    }

    /// Every format side by side.
    pub(super) fn comparison(&self, out: &mut String, answer: &Answer) {
        use std::fmt::Write;
        let runtime = self.checked.runtime.map(|r| r.to_string());
        self.header(out, answer, runtime.as_deref());
        if runtime.is_none() {
            let _ = writeln!(
                out,
                "runtime: each format's usual engine (column `runtime`); pick one with --runtime"
            );
        }
        out.push('\n');
        let mut table = Table::new(&[
            ("format", Align::Left),
            ("bpw", Align::Right),
            ("weights", Align::Right),
            ("total", Align::Right),
            ("usable", Align::Right),
            ("verdict", Align::Left),
            ("decode tok/s", Align::Right),
            ("prefill tok/s", Align::Right),
            ("runtime", Align::Left),
        ]);
        // One line per reason: a training comparison skips every GGUF type for the same one.
        let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
        for row in &answer.formats {
            match &row.outcome {
                RowOutcome::Estimated(e) => table.row(vec![
                    e.quant.clone(),
                    bits_per_weight(e),
                    gib(e.weights_bytes),
                    gib(e.per_device_bytes),
                    gib(e.usable_bytes),
                    verdict_short(e.verdict).to_owned(),
                    tokens_per_s(e.decode_tokens_per_s),
                    tokens_per_s(e.prefill_tokens_per_s),
                    if e.kv_cache_dtype == answer.estimate.kv_cache_dtype {
                        row.runtime.clone()
                    } else {
                        format!("{} (KV {})", row.runtime, e.kv_cache_dtype)
                    },
                ]),
                RowOutcome::Skipped(why) => {
                    match reasons.iter_mut().find(|(reason, _)| reason == why) {
                        Some((_, formats)) => formats.push(&row.format),
                        None => reasons.push((why, vec![&row.format])),
                    }
                }
            }
        }
        out.push_str(&table.render());
        let fitting = answer
            .formats
            .iter()
            .filter(|r| r.estimate().is_some_and(|e| e.fits))
            .count();
        let _ = writeln!(
            out,
            "\n{fitting} of {} formats fit; `total` is per device, GiB = 2^30 bytes.",
            table.len()
        );
        for (why, formats) in reasons {
            let _ = writeln!(out, "skipped {}: {why}", formats.join(", "));
        }
        let _ = writeln!(
            out,
            "For one format's components and assumptions: headroom fit {} --quant FORMAT ...",
            self.args.model
        );
    }
}

/// The serving lines: users that fit at this context, and decode per user and in aggregate.
fn serving_lines(out: &mut String, s: &headroom_core::serving::Serving) {
    use std::fmt::Write;
    let speed = |u: &headroom_core::serving::UsersSpeed| {
        format!(
            "{} tokens/s per user, {} tokens/s in aggregate{}",
            approx_rate(u.per_user_tokens_per_s),
            approx_rate(u.aggregate_tokens_per_s),
            if u.compute_bound {
                " (compute-bound)"
            } else {
                ""
            }
        )
    };
    let _ = writeln!(
        out,
        "serving: {} users fit at {} tokens each ({}; {} KV per user{})",
        thousands(s.max_users),
        thousands(s.context),
        s.limited_by,
        gib(s.kv_bytes_per_user),
        s.kv_pool_bytes
            .map(|p| format!(", KV pool {}", gib(p)))
            .unwrap_or_default()
    );
    if let Some(users) = s.users_asked {
        let _ = writeln!(
            out,
            "         {} users: {}",
            thousands(users),
            speed(&s.at_users)
        );
    }
    if let Some(at_max) = &s.at_max_users {
        let _ = writeln!(
            out,
            "         at {} users: {}",
            thousands(at_max.users),
            speed(at_max)
        );
    }
    let _ = writeln!(out, "         run as: {}", s.engine_settings);
}
