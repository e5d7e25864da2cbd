//! Drawing: transcript, input box and status line. Reads the app state; the only thing it changes
//! is the per-entry line cache (through the transcript) and the remembered pane size.

use super::app::App;
use crate::render::sanitize_expand_tabs as sanitize;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph};
use ratatui::Frame;

/// Smallest terminal the chat can be used in.
pub const MIN_WIDTH: u16 = 20;
pub const MIN_HEIGHT: u16 = 6;

pub fn draw(frame: &mut Frame, app: &mut App) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = format!("terminal too small: {}×{}, need {MIN_WIDTH}×{MIN_HEIGHT}", area.width, area.height);
        frame.render_widget(Paragraph::new(msg).wrap(ratatui::widgets::Wrap { trim: true }), area);
        return;
    }
    let input_width = area.width.saturating_sub(2);
    let (rows, cursor) = app.editor.layout(input_width.saturating_sub(2));
    let max_input = (area.height / 3).max(1);
    let input_height = (rows.len() as u16).clamp(1, max_input) + 2;
    let [top, input, status] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(input_height), Constraint::Length(1)]).areas(area);
    draw_transcript(frame, app, top);
    draw_input(frame, app, input, &rows, cursor);
    draw_status(frame, app, status);
}

fn draw_transcript(frame: &mut Frame, app: &mut App, area: Rect) {
    let width = area.width.saturating_sub(1).max(1);
    app.width = width;
    app.page = area.height as usize;
    let total = app.transcript.total_lines(width);
    app.scroll = app.scroll.min(total.saturating_sub(area.height as usize));
    let lines = app.transcript.visible(width, area.height as usize, app.scroll);
    let pad = (area.height as usize).saturating_sub(lines.len());
    let mut shown: Vec<Line> = vec![Line::default(); pad];
    shown.extend(lines);
    let text_area = Rect { width, ..area };
    frame.render_widget(Paragraph::new(shown), text_area);
    if app.scroll > 0 {
        let marker = format!(" ↓ {} more ", app.scroll);
        let w = (marker.chars().count() as u16).min(area.width);
        let r = Rect { x: area.right() - w, y: area.bottom() - 1, width: w, height: 1 };
        frame.render_widget(Paragraph::new(marker).style(Style::default().fg(Color::Black).bg(Color::Yellow)), r);
    }
}

fn draw_input(frame: &mut Frame, app: &App, area: Rect, rows: &[String], cursor: (u16, u16)) {
    let inner_h = area.height.saturating_sub(2) as usize;
    let first = (cursor.1 as usize + 1).saturating_sub(inner_h);
    let (title, border) = match (&app.search, app.generating()) {
        (Some(_), _) => (" history search (Enter take · Ctrl+R older · Esc cancel) ", Color::Yellow),
        (None, true) => (" generating — Esc stops ", Color::Magenta),
        (None, false) => (" message — Enter send · Alt+Enter newline · /help ", Color::DarkGray),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(Style::default().fg(border))
        .title(Span::styled(title, Style::default().fg(border)));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if let Some(search) = &app.search {
        let found = search.hit.map(|i| app.history.entries()[i].replace('\n', " ⏎ ")).unwrap_or_default();
        let line = Line::from(vec![
            Span::styled(format!("(search) {}", sanitize(&search.query)), Style::default().fg(Color::Yellow)),
            Span::raw(": "),
            Span::raw(sanitize(&found).into_owned()),
        ]);
        frame.render_widget(Paragraph::new(line), inner);
        return;
    }
    let prompt_area = Rect { width: 2, ..inner };
    frame.render_widget(Paragraph::new(Span::styled("› ", Style::default().fg(Color::Green))), prompt_area);
    let text_area = Rect { x: inner.x + 2, width: inner.width.saturating_sub(2), ..inner };
    let lines: Vec<Line> = rows.iter().skip(first).take(inner_h).map(|r| Line::raw(r.clone())).collect();
    frame.render_widget(Paragraph::new(lines), text_area);
    let x = (text_area.x + cursor.0).min(text_area.right().saturating_sub(1));
    let y = text_area.y + cursor.1.saturating_sub(first as u16);
    frame.set_cursor_position(Position { x, y });
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect) {
    let s = &app.status;
    let dim = Style::default().fg(Color::DarkGray);
    let mut spans = vec![
        Span::styled(format!(" {} ", sanitize(&s.model)), Style::default().add_modifier(Modifier::BOLD)),
        Span::styled(format!("{} ", sanitize(&s.device)), dim),
    ];
    if let super::app::Phase::Loading(p) = app.phase {
        spans.push(Span::styled(format!("loading {:>3.0}% ", p * 100.0), Style::default().fg(Color::Yellow)));
    } else if s.n_ctx > 0 {
        let cells = 10usize;
        let filled = (s.ctx_used * cells).div_ceil(s.n_ctx).min(cells);
        let color = if s.ctx_used * 10 > s.n_ctx * 9 { Color::Red } else { Color::Green };
        spans.push(Span::styled("ctx ", dim));
        spans.push(Span::styled("█".repeat(filled), Style::default().fg(color)));
        spans.push(Span::styled("░".repeat(cells - filled), dim));
        let about = if s.ctx_estimated { "~" } else { "" };
        spans.push(Span::raw(format!(" {about}{}/{} ", s.ctx_used, s.n_ctx)));
    }
    if let Some(last) = &s.last {
        spans.push(Span::styled(format!("· ttft {:.0} ms · {:.1} tok/s ", last.ttft_ms, last.gen_tok_s), dim));
    }
    if app.generating() {
        spans.push(Span::styled("● generating ", Style::default().fg(Color::Magenta)));
    }
    if let Some(h) = &app.hint {
        spans.push(Span::styled(format!("· {}", sanitize(h)), Style::default().fg(Color::Yellow)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
