//! `moat bench`: load time, prompt processing and generation speed, TTFT, and moat's overhead.

use super::args::{BenchArgs, ModelArgs};
use super::setup::{self, Setup};
use super::Failure;
use crate::engine::{BenchRequest, BenchSample, EngineError, Sink, StopReason, Task};

#[derive(serde::Serialize)]
struct Row {
    model: String,
    threads: u32,
    /// Flash attention as it ran (`on`/`off` once measured or forced; `auto` = llama.cpp's choice).
    flash_attn: String,
    n_batch: u32,
    load_ms: f64,
    depth: Option<usize>,
    pp_tokens: usize,
    pp_tok_s: f64,
    gen_tokens: usize,
    gen_tok_s: f64,
    ttft_ms: f64,
    llama_gen_tok_s: f64,
    ratio: f64,
    reps: usize,
    samples: Vec<BenchSample>,
}

pub fn run(flags: &ModelArgs, args: BenchArgs) -> Result<i32, Failure> {
    if args.reps == 0 || args.gen_tokens == 0 || args.prompt_tokens == 0 {
        return Err(Failure::usage("--reps, --prompt-tokens and --gen-tokens must be at least 1"));
    }
    if args.ui {
        return Ok(ui(&args));
    }
    let setup = Setup::new(flags)?;
    if let Some(file) = &args.perplexity {
        return super::quantize::perplexity(&setup, file, args.json);
    }
    let target = setup.target()?;
    if args.depth.is_some() && target.remote.is_some() {
        return Err(Failure::usage("--depth measures a local model; a server's cache is its own"));
    }
    // A server's threads are its own: measure it once.
    let threads_list = if args.threads_list.is_empty() || target.remote.is_some() {
        vec![setup.config().model.threads]
    } else {
        args.threads_list.clone()
    };
    let mut rows = Vec::new();
    let remote = target.remote.is_some();
    let at = args.depth.map(|d| format!(" @d{d}")).unwrap_or_default();
    if !args.json {
        sayln!(
            "{:<16} {:>7} {:>8} {:>12} {:>12} {:>8} {:>14} {:>10}",
            "model",
            if remote { "where" } else { "threads" },
            if remote { "connect" } else { "load ms" },
            format!("pp{}{at} t/s", args.prompt_tokens),
            format!("tg{}{at} t/s", args.gen_tokens),
            "ttft ms",
            if remote { "server tg t/s" } else { "llama tg t/s" },
            if remote { "moat/server" } else { "moat/llama" }
        );
    }
    for &threads in &threads_list {
        let mut opts = target.clone();
        if !args.threads_list.is_empty() {
            opts.threads = threads;
            opts.threads_batch = threads;
        }
        opts.n_ctx = opts.n_ctx.max((args.depth.unwrap_or(0) + args.prompt_tokens + args.gen_tokens + 64) as u32);
        let (engine, info) = setup::start(opts)?;
        let req = BenchRequest {
            depth: args.depth,
            prompt_tokens: args.prompt_tokens,
            gen_tokens: args.gen_tokens,
            reps: args.reps,
        };
        struct Samples(Vec<BenchSample>);
        impl Sink for Samples {
            fn bench(&mut self, sample: BenchSample) {
                self.0.push(sample)
            }
        }
        let mut samples = Samples(Vec::new());
        if engine.submit(Task::Bench(req)).wait(&mut samples)?.reason == StopReason::Cancelled {
            return Err(EngineError::Cancelled.into());
        }
        let samples = samples.0;
        let med = |f: fn(&BenchSample) -> f64| median(samples.iter().map(f).collect());
        let row = Row {
            model: info.name.clone(),
            threads: info.threads,
            flash_attn: info.flash_attn.clone(),
            n_batch: info.n_batch,
            load_ms: info.load_ms,
            depth: args.depth,
            pp_tokens: args.prompt_tokens,
            pp_tok_s: med(|s| s.pp_tok_s),
            gen_tokens: args.gen_tokens,
            gen_tok_s: med(|s| s.gen_tok_s),
            ttft_ms: med(|s| s.ttft_ms),
            llama_gen_tok_s: med(|s| s.llama_gen_tok_s),
            ratio: med(|s| s.ratio),
            reps: samples.len(),
            samples,
        };
        if !args.json {
            let (model, threads) = match remote {
                true => (info.short_name(), "server".to_string()),
                false => (row.model.clone(), row.threads.to_string()),
            };
            sayln!(
                "{:<16} {:>7} {:>8.0} {:>12.1} {:>12.1} {:>8.1} {:>14.1} {:>10.3}",
                model,
                threads,
                row.load_ms,
                row.pp_tok_s,
                row.gen_tok_s,
                row.ttft_ms,
                row.llama_gen_tok_s,
                row.ratio
            );
        }
        rows.push(row);
    }
    if args.json {
        println!("{}", serde_json::json!({ "results": rows }));
    } else if remote {
        // What HTTP, the stream and queueing add before the first token.
        for row in &rows {
            let overhead = median(row.samples.iter().map(|s| s.ttft_ms - s.pp_ms).collect());
            sayln!("ttft minus the server's prompt time: {overhead:.1} ms (median)");
        }
        sayln!(
            "(medians of {} runs; moat/server = tokens/s as moat receives them over the server's own timing)",
            args.reps
        );
    } else {
        sayln!(
            "(medians of {} runs; moat/llama = moat's wall-clock generation rate over llama.cpp's eval timing)",
            args.reps
        );
        if let Some(row) = rows.first() {
            sayln!("(flash attention {}, batch {})", row.flash_attn, row.n_batch);
        }
    }
    Ok(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ui(args: &BenchArgs) -> i32 {
    let r = crate::tui::bench::run(args.messages.max(2), args.tokens.max(1), 120, 40);
    if args.json {
        println!("{}", serde_json::to_string(&r).expect("serialises"));
        return 0;
    }
    sayln!(
        "chat view, {} messages, {}x{} TestBackend, a frame drawn after every token:",
        r.messages,
        r.width,
        r.height
    );
    sayln!("  first frame (wrap everything)   {:>8.2} ms", r.first_frame_ms);
    sayln!(
        "  streaming {} tokens: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        r.stream_tokens,
        r.frame_p50_ms,
        r.frame_p99_ms,
        r.frame_max_ms
    );
    sayln!("  throughput, worst case          {:>8.0} tokens/s", r.tokens_per_s_worst_case);
    sayln!("  paging up: p99 {:.3} ms; frame after resize {:.2} ms", r.scroll_p99_ms, r.resize_ms);
    sayln!(
        "paced: {} tokens at {:.0} tokens/s, frames coalesced as in the chat: {} frames, worst lag {:.1} ms, finished at {:.3}x the stream's own duration",
        r.stream_tokens, r.paced_rate, r.paced_frames, r.paced_max_lag_ms, r.paced_finish_ratio
    );
    0
}
