//! `moat ask` and piped stdin: one prompt in, one streamed reply out.

use super::args::{AskArgs, ModelArgs};
use super::run_log::{self, RunLog};
use super::setup::Setup;
use super::{exit, input, Failure};
use crate::chat::session::reply_stats_json;
use crate::chat::{Conversation, Message};
use crate::engine::{StopReason, Task};
use std::io::{IsTerminal, Write};

pub fn run(flags: &ModelArgs, args: AskArgs) -> Result<i32, Failure> {
    let setup = Setup::new(flags)?;
    let prompt = prompt_text(&args)?;
    let (engine, info) = setup.start_engine()?;
    let config = setup.config();
    let mut conversation = Conversation::new(&config.chat.system_prompt);
    conversation.push(Message::user(prompt));

    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let mut out = stdout.lock();
    // On a terminal the reply is untrusted text (escape sequences can span tokens); on a pipe it is
    // the user's data and stays byte-exact.
    let mut sanitizer = crate::render::Sanitizer::default();
    let (sampling, overflow, reserve) = (config.sampling.clone(), config.chat.overflow, config.chat.reserve);
    let messages = conversation.messages.clone();
    // Shared by both callbacks: reasoning is printed (when asked for) before the answer.
    let shown = std::cell::RefCell::new((&mut out, true, false));
    let mut reasoning_sanitizer = crate::render::Sanitizer::default();
    let log = args.log || (config.chat.log_ask && !args.no_log);
    // What came so far, for the log when an error cuts the reply off.
    let so_far = std::cell::RefCell::new(String::new());
    let result = engine.submit(Task::Chat { messages, sampling, overflow, reserve }).text_and_reasoning(
        |text| {
            if log {
                so_far.borrow_mut().push_str(text);
            }
            if args.json {
                return;
            }
            let mut s = shown.borrow_mut();
            let (out, ended, in_reasoning) = &mut *s;
            if std::mem::take(in_reasoning) {
                let _ = out.write_all(if *ended { b"\n" } else { b"\n\n" });
            }
            let text =
                if tty { std::borrow::Cow::Owned(sanitizer.push(text)) } else { std::borrow::Cow::Borrowed(text) };
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            *ended = text.ends_with('\n');
        },
        |text| {
            if args.json || !args.show_reasoning {
                return;
            }
            let mut s = shown.borrow_mut();
            let (out, ended, in_reasoning) = &mut *s;
            *in_reasoning = true;
            let clean = if tty { reasoning_sanitizer.push(text) } else { text.to_string() };
            let styled = if tty { format!("\x1b[2m{clean}\x1b[0m") } else { clean.clone() };
            let _ = out.write_all(styled.as_bytes());
            let _ = out.flush();
            *ended = clean.ends_with('\n');
        },
    );
    let log_run = |reply: Message, stats: Option<String>| {
        let mut messages = conversation.messages.clone();
        messages.push(reply);
        let (model, sampling) = (info.short_name(), &config.sampling);
        run_log::save(&setup.loaded.paths.data_dir, RunLog { kind: "ask", model: &model, sampling, messages, stats })
    };
    let reply = match result {
        Ok(reply) => reply,
        Err(e) => {
            let text = so_far.into_inner();
            if log && !text.is_empty() {
                // Cut off mid-reply: what came is kept, marked, as the chat keeps it.
                let mut cut = Message::assistant(text);
                cut.cut_off = Some(e.to_string());
                log_run(cut, None);
            }
            return Err(e.into());
        }
    };
    let ended_with_newline = shown.into_inner().1;
    if !args.json && !ended_with_newline {
        // Before any warning, so on a terminal none runs on from the reply.
        let _ = writeln!(out);
        let _ = out.flush();
    }
    // A reply stopped before its first token has nothing worth keeping.
    let logged = (log && !(reply.reason == StopReason::Cancelled && reply.text.is_empty())).then(|| {
        let stats = reply_stats_json(&info.short_name(), &reply.stats, reply.reason);
        log_run(Message::assistant(reply.text.clone()), Some(stats))
    });
    if reply.text.trim().is_empty() && !reply.reasoning.is_empty() && !args.show_reasoning && !args.json {
        warnln!("moat: the model only reasoned and gave no answer; --show-reasoning shows its thinking");
    }
    if reply.trimmed_messages > 0 {
        warnln!("moat: dropped {} older messages to fit the context", reply.trimmed_messages);
    }
    let s = &reply.stats;
    if args.json {
        let json = serde_json::json!({
            "text": reply.text,
            "model": info.name,
            "prompt_tokens": s.prompt_tokens,
            "gen_tokens": s.gen_tokens,
            "context_used": s.context_used,
            "context_size": s.n_ctx,
            "context_estimated": s.context_estimated,
            "ttft_ms": round2(s.ttft_ms),
            "gen_tok_s": round2(s.gen_tok_s),
            "stop_reason": reply.reason,
            "seed": s.seed,
        });
        let mut json = json;
        if let Some(Some(name)) = &logged {
            json["session"] = serde_json::Value::String(name.clone());
        }
        if !reply.reasoning.is_empty() {
            json["reasoning"] = serde_json::Value::String(reply.reasoning.clone());
        }
        let _ = writeln!(out, "{json}");
    }
    let _ = out.flush();
    // After the reply's last line, so on a terminal it does not run on from the reply.
    if let Some(note) = &reply.stats.note {
        warnln!("moat: {note}");
    }
    if args.stats {
        warnln!(
            "moat: {} prompt tokens ({} reused), {} generated, ttft {:.0} ms, {:.1} tok/s, stop: {}",
            s.prompt_tokens,
            s.reused_tokens,
            s.gen_tokens,
            s.ttft_ms,
            s.gen_tok_s,
            // The name `--json` uses, not the Rust one.
            serde_json::to_value(reply.reason).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
        );
    }
    match reply.reason {
        StopReason::Cancelled => {
            warnln!("moat: interrupted");
            Ok(exit::INTERRUPTED)
        }
        StopReason::ContextFull if info.remote.is_some() => {
            warnln!("moat: the reply filled the server's context window and was cut short; serve the model with a larger context");
            Ok(0)
        }
        StopReason::ContextFull => {
            warnln!("moat: the reply filled the context window and was cut short; raise --ctx-size");
            Ok(0)
        }
        _ => Ok(0),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Arguments first, then piped stdin; at least one of them must hold text.
fn prompt_text(args: &AskArgs) -> Result<String, Failure> {
    let from_args = crate::text_input::normalize_newlines_owned(args.prompt.join(" "));
    // An empty pipe (`< /dev/null`, cron) adds nothing, not a blank paragraph.
    let from_stdin = input::read_stdin()?.filter(|s| !s.trim().is_empty());
    let text = match from_stdin {
        Some(s) if !from_args.trim().is_empty() => format!("{from_args}\n\n{s}"),
        Some(s) => s,
        None => from_args,
    };
    if text.trim().is_empty() {
        return Err(Failure::usage(
            "no prompt: pass one as an argument (`moat ask \"...\"`) or pipe text in (stdin was empty)",
        ));
    }
    Ok(text)
}
