//! Frame-time benchmark of the chat view: a long transcript drawn to ratatui's `TestBackend` while a
//! reply streams into it, with a frame drawn after every token (the worst case; the real loop draws
//! at most every 16 ms).

use super::app::App;
use super::view;
use crate::config::Config;
use crate::engine::{Event, Finish, Sink};
use crate::history::History;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use std::time::Instant;

#[derive(Debug, Clone, serde::Serialize)]
pub struct UiBench {
    pub messages: usize,
    pub width: u16,
    pub height: u16,
    /// First frame: every message wrapped once.
    pub first_frame_ms: f64,
    pub stream_tokens: usize,
    pub frame_p50_ms: f64,
    pub frame_p99_ms: f64,
    pub frame_max_ms: f64,
    /// Tokens per second the view absorbs when drawing after every token.
    pub tokens_per_s_worst_case: f64,
    /// Frames while paging up through the transcript.
    pub scroll_p99_ms: f64,
    /// Frame after a resize (everything re-wrapped once).
    pub resize_ms: f64,
    /// Paced run: tokens arrive in real time at this rate and frames are coalesced as in the chat.
    pub paced_rate: f64,
    /// Paced run: from the first token sent to the last token on screen, over the time the
    /// producer took (1.0 = no lag at all).
    pub paced_finish_ratio: f64,
    /// Paced run: the longest a token waited between being sent and being drawn.
    pub paced_max_lag_ms: f64,
    pub paced_frames: usize,
}

const SAMPLE_REPLY: &str = "## 市场分析 Market view\n\nA **moat** protects margins: *switching costs*, network effects and \
scale. 护城河让企业长期保持高于平均水平的回报。\n\n| factor | 因素 | weight |\n|---|---|---|\n| brand | 品牌 | 0.3 |\n| cost | 成本 | 0.5 |\n\n\
```python\ndef moat_score(brand, cost):\n    return 0.3 * brand + 0.5 * cost  # weighted\n```\n\n> Quote: competition erodes returns 🦀.\n\n\
- first point\n- second point with more words to wrap across the line\n  1. nested\n";

pub fn run(messages: usize, tokens: usize, width: u16, height: u16) -> UiBench {
    crate::render::warm_up();
    let mut app = App::new(Config::default(), None, History::load(None));
    app.on_engine(Event::Loaded(Box::new(fake_info())));
    for i in 0..messages / 2 {
        app.editor.set(&format!("question {i}: 请解释一下 moat 的含义，以及它为什么重要？"));
        app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
        app.token(SAMPLE_REPLY);
        app.request_ended(Ok(Finish::default()));
    }
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    let t = Instant::now();
    terminal.draw(|f| view::draw(f, &mut app)).expect("draw");
    let first_frame_ms = ms(t);

    app.editor.set("Stream a long answer, please.");
    app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    let pieces: Vec<&str> = SAMPLE_REPLY.split_inclusive([' ', '\n']).collect();
    let mut frames = Vec::with_capacity(tokens);
    let start = Instant::now();
    for i in 0..tokens {
        let t = Instant::now();
        app.token(pieces[i % pieces.len()]);
        terminal.draw(|f| view::draw(f, &mut app)).expect("draw");
        frames.push(ms(t));
    }
    let stream_s = start.elapsed().as_secs_f64();

    let mut scroll = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        app.on_key(KeyEvent::new(KeyCode::PageUp, KeyModifiers::NONE));
        terminal.draw(|f| view::draw(f, &mut app)).expect("draw");
        scroll.push(ms(t));
    }
    terminal.backend_mut().resize(width - 7, height);
    let t = Instant::now();
    terminal.draw(|f| view::draw(f, &mut app)).expect("draw");
    let resize_ms = ms(t);

    let paced = paced(&mut app, &mut terminal, tokens, 2000.0, &pieces);

    UiBench {
        paced_rate: 2000.0,
        paced_finish_ratio: paced.0,
        paced_max_lag_ms: paced.1,
        paced_frames: paced.2,
        messages: app.transcript.entries().len(),
        width,
        height,
        first_frame_ms,
        stream_tokens: tokens,
        frame_p50_ms: percentile(&mut frames, 0.50),
        frame_p99_ms: percentile(&mut frames, 0.99),
        frame_max_ms: percentile(&mut frames, 1.0),
        tokens_per_s_worst_case: tokens as f64 / stream_s,
        scroll_p99_ms: percentile(&mut scroll, 0.99),
        resize_ms,
    }
}

/// Streams `tokens` from another thread at `rate` per second into the app, drawing the way the chat
/// loop does (drain everything queued, then at most one frame per [`super::FRAME`]). Returns the
/// finish ratio, the worst lag in ms and the number of frames.
fn paced(
    app: &mut App,
    terminal: &mut Terminal<TestBackend>,
    tokens: usize,
    rate: f64,
    pieces: &[&str],
) -> (f64, f64, usize) {
    app.editor.set("Another long answer, please.");
    app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    app.scroll = 0;
    let (tx, rx) = crossbeam_channel::unbounded::<(Instant, String)>();
    let owned: Vec<String> = pieces.iter().map(|p| p.to_string()).collect();
    let producer = std::thread::spawn(move || {
        let start = Instant::now();
        for i in 0..tokens {
            let due = start + std::time::Duration::from_secs_f64(i as f64 / rate);
            while Instant::now() < due {
                std::hint::spin_loop();
            }
            let _ = tx.send((Instant::now(), owned[i % owned.len()].clone()));
        }
        start.elapsed()
    });
    let start = Instant::now();
    let mut last_draw = Instant::now() - super::FRAME;
    let (mut received, mut frames, mut max_lag) = (0usize, 0usize, 0f64);
    let mut oldest_undrawn: Option<Instant> = None;
    let mut finished_at = start;
    while received < tokens || oldest_undrawn.is_some() {
        let wait = super::FRAME.saturating_sub(last_draw.elapsed());
        if let Ok((sent, text)) = rx.recv_timeout(wait) {
            oldest_undrawn.get_or_insert(sent);
            app.token(&text);
            received += 1;
            while let Ok((_, text)) = rx.try_recv() {
                app.token(&text);
                received += 1;
            }
        }
        if let Some(sent) = oldest_undrawn {
            if last_draw.elapsed() >= super::FRAME || received == tokens {
                terminal.draw(|f| view::draw(f, app)).expect("draw");
                last_draw = Instant::now();
                frames += 1;
                max_lag = max_lag.max(last_draw.duration_since(sent).as_secs_f64() * 1000.0);
                oldest_undrawn = None;
                finished_at = last_draw;
            }
        }
    }
    let produced = producer.join().expect("producer");
    let total = finished_at.duration_since(start).as_secs_f64();
    (total / produced.as_secs_f64().max(1e-9), max_lag, frames)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(0.0)
}

fn fake_info() -> crate::engine::ModelInfo {
    crate::engine::ModelInfo {
        name: "bench-model".into(),
        path: "bench.gguf".into(),
        architecture: "llama".into(),
        description: String::new(),
        n_params: 0,
        size_bytes: 0,
        n_ctx: 4096,
        n_ctx_train: 4096,
        n_batch: 512,
        threads: 1,
        threads_batch: 1,
        gpu: false,
        gpu_layers: 0,
        chat_format: "bench".into(),
        load_ms: 0.0,
        system_info: String::new(),
        ..Default::default()
    }
}
