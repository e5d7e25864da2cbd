//! GFM tables laid out by display width, shrinking and wrapping columns to fit.

use pulldown_cmark::Alignment;
use ratatui::text::{Line, Span};

use super::theme::Theme;
use super::wrap::{self, spans_width, Mode};

/// Narrowest useful column: room for a wide character or a short number. Below this a grid
/// turns into a column of ellipses, so the table is listed row by row instead.
const MIN_COLUMN: usize = 3;

pub(super) type Cell = Vec<Span<'static>>;

pub(super) struct Table {
    pub aligns: Vec<Alignment>,
    /// Number of leading rows that form the header (0 or 1).
    pub header_rows: usize,
    pub rows: Vec<Vec<Cell>>,
}

/// Column widths that fit `space` columns.
///
/// Each column gets its natural width if everything fits. Otherwise columns start from a floor
/// (their longest word, when all floors fit, so words are not cut) and the remaining space is
/// water-filled: the widest columns are capped at a common limit, narrow ones stay intact.
fn fit_columns(natural: &[usize], words: &[usize], space: usize) -> Vec<usize> {
    let natural: Vec<usize> = natural.iter().map(|&w| w.max(1)).collect();
    if natural.iter().sum::<usize>() <= space {
        return natural;
    }
    let floors: Vec<usize> = natural.iter().zip(words).map(|(&n, &w)| w.clamp(1, n)).collect();
    let floors = if floors.iter().sum::<usize>() <= space { floors } else { vec![1; natural.len()] };
    let at_cap = |cap: usize| natural.iter().zip(&floors).map(move |(&n, &f)| n.min(cap).max(f));
    let (mut lo, mut hi) = (1, natural.iter().copied().max().unwrap_or(1));
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if at_cap(mid).sum::<usize>() <= space {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let mut widths: Vec<usize> = at_cap(lo).collect();
    let mut left = space.saturating_sub(widths.iter().sum());
    for (w, &nat) in widths.iter_mut().zip(&natural) {
        if left == 0 {
            break;
        }
        if *w < nat {
            *w += 1;
            left -= 1;
        }
    }
    widths
}

fn border(widths: &[usize], left: &str, mid: &str, right: &str, style: ratatui::style::Style) -> Line<'static> {
    let mut s = String::from(left);
    for (i, w) in widths.iter().enumerate() {
        if i > 0 {
            s.push_str(mid);
        }
        s.extend(std::iter::repeat_n('─', w + 2));
    }
    s.push_str(right);
    Line::from(Span::styled(s, style))
}

/// Lays the table out in at most `width` columns. Falls back to one wrapped `a │ b` line per
/// row when the columns cannot get [`MIN_COLUMN`] cells each inside the borders.
pub(super) fn render_table(table: Table, width: usize, theme: &Theme) -> Vec<Line<'static>> {
    let cols = table.rows.iter().map(Vec::len).max().unwrap_or(0).max(table.aligns.len());
    if cols == 0 {
        return Vec::new();
    }
    let width = width.max(1);
    let mut natural = vec![0; cols];
    let mut words = vec![0; cols];
    for row in &table.rows {
        for (c, cell) in row.iter().enumerate() {
            natural[c] = natural[c].max(spans_width(cell));
            words[c] = words[c].max(wrap::longest_word(cell));
        }
    }
    let overhead = 3 * cols + 1;
    let needed: usize = natural.iter().map(|&w| w.clamp(1, MIN_COLUMN)).sum();
    if width < overhead + needed {
        return fallback(table, width, theme);
    }
    let widths = fit_columns(&natural, &words, width - overhead);
    let bar = Span::styled("│", theme.table_border);
    let mut out = vec![border(&widths, "┌", "┬", "┐", theme.table_border)];
    for (r, row) in table.rows.into_iter().enumerate() {
        let header = r < table.header_rows;
        let cells: Vec<Vec<Line<'static>>> = (0..cols)
            .map(|c| {
                let mut cell = row.get(c).cloned().unwrap_or_default();
                if header {
                    cell.iter_mut().for_each(|s| s.style = theme.table_header.patch(s.style));
                }
                wrap::wrap(&cell, widths[c], &[], &[], Mode::Words)
            })
            .collect();
        let height = cells.iter().map(Vec::len).max().unwrap_or(1);
        for k in 0..height {
            let mut spans = vec![bar.clone()];
            for (c, lines) in cells.iter().enumerate() {
                let content = lines.get(k).map(|l| l.spans.clone()).unwrap_or_default();
                let pad = widths[c].saturating_sub(spans_width(&content));
                let (before, after) = match table.aligns.get(c) {
                    Some(Alignment::Right) => (pad, 0),
                    Some(Alignment::Center) => (pad / 2, pad - pad / 2),
                    _ => (0, pad),
                };
                spans.push(Span::raw(" ".repeat(before + 1)));
                spans.extend(content);
                spans.push(Span::raw(" ".repeat(after + 1)));
                spans.push(bar.clone());
            }
            out.push(Line::from(spans));
        }
        if header && r + 1 == table.header_rows {
            out.push(border(&widths, "├", "┼", "┤", theme.table_border));
        }
    }
    out.push(border(&widths, "└", "┴", "┘", theme.table_border));
    out
}

fn fallback(table: Table, width: usize, theme: &Theme) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    for (r, row) in table.rows.into_iter().enumerate() {
        let mut spans = Vec::new();
        for (c, cell) in row.into_iter().enumerate() {
            if c > 0 {
                spans.push(Span::styled(" │ ", theme.table_border));
            }
            if r < table.header_rows {
                spans.extend(cell.into_iter().map(|s| Span::styled(s.content, theme.table_header.patch(s.style))));
            } else {
                spans.extend(cell);
            }
        }
        out.extend(wrap::wrap(&spans, width, &[], &[], Mode::Words));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::fit_columns;

    #[test]
    fn columns_keep_natural_width_when_they_fit() {
        assert_eq!(fit_columns(&[3, 5, 0], &[3, 5, 0], 20), vec![3, 5, 1]);
    }

    #[test]
    fn widest_columns_shrink_first() {
        let w = fit_columns(&[4, 30, 20], &[4, 5, 5], 30);
        assert_eq!(w.iter().sum::<usize>(), 30);
        assert_eq!(w[0], 4, "narrow column untouched: {w:?}");
        assert!(w[1] >= w[2] && w[1] - w[2] <= 1, "{w:?}");
    }

    #[test]
    fn long_words_are_kept_whole_when_possible() {
        // Without word floors the 12-wide CJK column and the 11-wide word would both get 8.
        assert_eq!(fit_columns(&[12, 33], &[2, 11], 17), vec![6, 11]);
        // Floors that cannot all fit are dropped rather than overflowing.
        assert_eq!(fit_columns(&[20, 20], &[15, 15], 17).iter().sum::<usize>(), 17);
    }
}
