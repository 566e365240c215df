//! SVG charts drawn by our own components: a stacked memory bar, horizontal bar charts and the
//! allocation-sweep curve. Every chart has a `<title>`, an `aria-label` text alternative and axis
//! labels with units. Geometry lives in pure functions so it is tested natively.
//!
//! Each chart is drawn for the width of its box ([`layout_width`]): one SVG unit is one CSS
//! pixel from a phone up to [`WIDTH`], so the stylesheet's 11–12 px chart text stays 11–12 px on
//! a 390 px screen instead of shrinking with a fixed 640-unit drawing (it was about 6 px there).

use leptos::{html::Div, prelude::*};

/// Widest drawing, in SVG user units; a wider box scales it up.
pub const WIDTH: f64 = 640.0;
/// Narrowest drawing: below it (a box under 240 px) the SVG scales down.
pub const MIN_WIDTH: f64 = 240.0;
/// Below this drawing width a bar chart puts each label above its bar, not in a left column.
pub const NARROW_WIDTH: f64 = 480.0;
/// Left margin for bar labels (wide layout).
const LABEL_WIDTH: f64 = 150.0;
/// Right margin for value labels (wide layout).
const VALUE_WIDTH: f64 = 110.0;
/// Average advance of a 12 px system-ui character, px, rounded up (capitals and `/` are wider
/// than digits): to give value labels their room and cut bar labels to theirs.
const CHAR_PX: f64 = 7.2;
/// Gap between a bar's end and its value label, plus slack at the right edge.
const VALUE_GAP: f64 = 12.0;
/// Left margin of the narrow bar layout, so the first letter is not on the box's edge.
const NARROW_LEFT: f64 = 4.0;

/// Anchor of a label drawn at `x` beside a marker: after it (`start`) when it fits before
/// `right_edge`, else before it (`end`). At 640 units a label could start at 70% of the width; at
/// a phone's 328 it no longer fits there, so the choice follows the label's estimated length.
pub fn label_anchor(x: f64, text: &str, right_edge: f64) -> &'static str {
    if x + text.chars().count() as f64 * CHAR_PX <= right_edge {
        "start"
    } else {
        "end"
    }
}

/// The width to draw a chart at for a box `box_px` CSS pixels wide: the box's own width between
/// [`MIN_WIDTH`] and [`WIDTH`], so text is drawn at its CSS size. [`WIDTH`] when the box has no
/// width yet (not laid out).
pub fn layout_width(box_px: f64) -> f64 {
    if box_px.is_finite() && box_px > 0.0 {
        box_px.clamp(MIN_WIDTH, WIDTH)
    } else {
        WIDTH
    }
}

/// The drawing width of the chart in `node`'s box: a first guess from the window's width (the
/// page is one column under 760 px, inside 16 px page and 15 px card margins), then the box's
/// measured width once it is in the page, and again whenever the window is resized.
fn box_width(node: NodeRef<Div>) -> ReadSignal<f64> {
    /// Page padding (2 × 16 px) and card padding and border (2 × 15 px) around a chart.
    const PAGE_AND_CARD_PX: f64 = 62.0;
    /// The stylesheet's one-column breakpoint.
    const ONE_COLUMN_PX: f64 = 760.0;
    let window_px = web_sys::window()
        .and_then(|w| w.inner_width().ok())
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    let guess = if window_px > 0.0 && window_px < ONE_COLUMN_PX {
        layout_width(window_px - PAGE_AND_CARD_PX)
    } else {
        WIDTH
    };
    let (width, set_width) = signal(guess);
    let measure = move || {
        if let Some(el) = node.get_untracked() {
            let w = layout_width(f64::from(el.client_width()));
            // Half a pixel either way does not change the text size; skip the redraw.
            if (w - width.get_untracked()).abs() > 0.5 {
                set_width.set(w);
            }
        }
    };
    Effect::new(move |_| {
        if node.get().is_some() {
            measure();
        }
    });
    let handle = window_event_listener(leptos::ev::resize, move |_| measure());
    on_cleanup(move || handle.remove());
    width
}

/// "Nice" axis ticks from 0 to at least `max` (1, 2 or 5 × 10^k steps, 3–6 ticks).
pub fn nice_ticks(max: f64) -> Vec<f64> {
    if !max.is_finite() || max <= 0.0 {
        return vec![0.0, 1.0];
    }
    let raw_step = max / 4.0;
    let magnitude = 10f64.powf(raw_step.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw_step)
        .unwrap_or(10.0 * magnitude);
    let mut ticks = vec![0.0];
    let mut t = 0.0;
    while t < max - 1e-9 * max {
        t += step;
        ticks.push(t);
    }
    ticks
}

/// Format a tick value compactly, with enough decimals for small values (0.0002 stays 0.0002).
pub fn tick_label(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        "0".into()
    } else if v.abs() >= 100.0 || v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        let decimals = (-v.abs().log10()).ceil() as usize + 1;
        let text = format!("{v:.decimals$}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Characters of a bar label that fit the label column at the chart's font size (the column
/// less the 6-unit gap to the bar and a 4-unit margin, at [`CHAR_PX`] a character).
const MAX_LABEL_CHARS: usize = ((LABEL_WIDTH - 10.0) / CHAR_PX) as usize;

/// `text` cut to `max` characters with an ellipsis (the full text stays in the bar's `<title>`).
pub fn short_label(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// One part of a stacked bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Legend label, e.g. `Weights`.
    pub label: String,
    /// Size in GiB.
    pub value_gib: f64,
    /// CSS class that colours it (`seg-weights`, ...).
    pub class: &'static str,
}

/// A vertical marker on a stacked bar (usable memory, the 70–75% guide).
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// Position in GiB.
    pub at_gib: f64,
    /// Label drawn beside it.
    pub label: String,
    /// CSS class (`marker-usable`, `marker-guide`).
    pub class: &'static str,
}

/// The memory needed, stacked by component, against the memory available.
#[component]
pub fn StackedBar(
    /// Chart title (also the SVG `<title>`).
    title: String,
    /// Components, drawn left to right.
    segments: Vec<Segment>,
    /// Vertical markers (usable memory, guide lines).
    markers: Vec<Marker>,
) -> impl IntoView {
    let node = NodeRef::<Div>::new();
    let width = box_width(node);
    view! {
        <div class="chart-box" node_ref=node>
            {move || stacked_bar_svg(width.get(), &title, &segments, &markers)}
        </div>
    }
}

/// [`StackedBar`] drawn `width` units wide.
fn stacked_bar_svg(
    width: f64,
    title: &str,
    segments: &[Segment],
    markers: &[Marker],
) -> impl IntoView + use<> {
    let total: f64 = segments.iter().map(|s| s.value_gib).sum();
    let axis_max = markers
        .iter()
        .map(|m| m.at_gib)
        .fold(total, f64::max)
        .max(f64::MIN_POSITIVE);
    let ticks = nice_ticks(axis_max);
    let scale_max = ticks.last().copied().unwrap_or(axis_max);
    let plot_left = 10.0;
    let plot_width = width - 20.0;
    let x = move |gib: f64| plot_left + gib / scale_max * plot_width;
    // One label row per marker (up to three: usable, 70%, 75%) so close markers do not overlap.
    let bar_y = 12.0 + 13.0 * markers.len().max(1) as f64;
    let bar_h = 40.0;
    let height = bar_y + 116.0 + 22.0 * segments.len() as f64;
    let description = format!(
        "{title}: {}; total {total:.2} GiB; {}",
        segments
            .iter()
            .map(|s| format!("{} {:.2} GiB", s.label, s.value_gib))
            .collect::<Vec<_>>()
            .join(", "),
        markers
            .iter()
            .map(|m| format!("{} at {:.2} GiB", m.label, m.at_gib))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut left = 0.0;
    let rects = segments
        .iter()
        .map(|s| {
            let x0 = x(left);
            left += s.value_gib;
            let w = (x(left) - x0).max(0.0);
            let tip = format!("{}: {:.2} GiB", s.label, s.value_gib);
            view! { <rect class=s.class x=x0 y=bar_y width=w height=bar_h><title>{tip}</title></rect> }
        })
        .collect_view();
    let marker_views = markers
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mx = x(m.at_gib);
            let label_y = 12.0 + 13.0 * i as f64;
            let text = format!("{} {:.1} GiB", m.label, m.at_gib);
            let anchor = label_anchor(mx, &text, width);
            view! {
                <line class=m.class x1=mx x2=mx y1=bar_y - 6.0 y2=bar_y + bar_h + 6.0 />
                <text class="marker-label" x=mx y=label_y text-anchor=anchor>{text}</text>
            }
        })
        .collect_view();
    let axis_y = bar_y + bar_h + 22.0;
    let tick_views = ticks
        .iter()
        .map(|&t| {
            let tx = x(t);
            view! {
                <line class="tick" x1=tx x2=tx y1=bar_y + bar_h y2=bar_y + bar_h + 5.0 />
                <text class="tick-label" x=tx y=axis_y text-anchor="middle">{tick_label(t)}</text>
            }
        })
        .collect_view();
    let legend = segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let ly = axis_y + 40.0 + 22.0 * i as f64;
            let text = format!("{} — {:.2} GiB", s.label, s.value_gib);
            view! {
                <rect class=s.class x=plot_left y=ly - 11.0 width=14 height=14 />
                <text class="legend" x=plot_left + 22.0 y=ly>{text}</text>
            }
        })
        .collect_view();
    let view_box = format!("0 0 {width} {height}");
    let aria = description.clone();
    view! {
        <svg class="chart stacked-bar" viewBox=view_box role="img" aria-label=aria>
            <title>{title.to_string()}</title>
            <desc>{description}</desc>
            {rects}
            {marker_views}
            {tick_views}
            <text class="axis-label" x=width / 2.0 y=axis_y + 18.0 text-anchor="middle">"memory (GiB)"</text>
            {legend}
        </svg>
    }
}

/// One bar of a [`BarChart`].
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Label at the left.
    pub label: String,
    /// Value in the chart's unit.
    pub value: f64,
    /// Text at the bar's end (the value with its unit, or a note).
    pub value_text: String,
}

/// Horizontal bars with labels, for GEMM rates, bandwidths and side-by-side devices.
#[component]
pub fn BarChart(
    /// Chart title.
    title: String,
    /// Axis label with its unit, e.g. `TFLOP/s`.
    unit: String,
    /// The bars.
    bars: Vec<Bar>,
) -> impl IntoView {
    let node = NodeRef::<Div>::new();
    let width = box_width(node);
    view! {
        <div class="chart-box" node_ref=node>
            {move || bar_chart_svg(width.get(), &title, &unit, &bars)}
        </div>
    }
}

/// Where a [`BarChart`]'s parts go at one drawing width.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BarLayout {
    /// Label above the bar (narrow) or in a column left of it (wide).
    pub labels_above: bool,
    /// X of the bars' zero.
    pub plot_left: f64,
    /// Width of the bars' scale.
    pub plot_width: f64,
    /// Height of one bar's row.
    pub row_h: f64,
    /// Most characters of a label (cut with an ellipsis beyond; the full text is in the `<title>`).
    pub label_chars: usize,
}

impl BarLayout {
    /// The layout for a drawing `width` units wide whose longest value label has `value_chars`
    /// characters: the longest bar leaves room for it (up to half the width).
    pub fn for_width(width: f64, value_chars: usize) -> BarLayout {
        let value_width = (value_chars as f64 * CHAR_PX + VALUE_GAP).min(width / 2.0);
        if width < NARROW_WIDTH {
            let label_chars = (width / CHAR_PX).floor().max(8.0) as usize;
            BarLayout {
                labels_above: true,
                plot_left: NARROW_LEFT,
                plot_width: width - NARROW_LEFT - value_width,
                row_h: 40.0,
                label_chars,
            }
        } else {
            BarLayout {
                labels_above: false,
                plot_left: LABEL_WIDTH,
                plot_width: width - LABEL_WIDTH - value_width.max(VALUE_WIDTH),
                row_h: 26.0,
                label_chars: MAX_LABEL_CHARS,
            }
        }
    }
}

/// [`BarChart`] drawn `width` units wide.
fn bar_chart_svg(width: f64, title: &str, unit: &str, bars: &[Bar]) -> impl IntoView + use<> {
    let value_chars = bars
        .iter()
        .map(|b| b.value_text.chars().count())
        .max()
        .unwrap_or(0);
    let layout = BarLayout::for_width(width, value_chars);
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let ticks = nice_ticks(max);
    let scale_max = ticks.last().copied().unwrap_or(1.0).max(f64::MIN_POSITIVE);
    let BarLayout {
        plot_left,
        plot_width,
        row_h,
        ..
    } = layout;
    let top = 10.0;
    let height = top + row_h * bars.len() as f64 + 44.0;
    let x = move |v: f64| plot_left + v.max(0.0) / scale_max * plot_width;
    let description = format!(
        "{title} ({unit}): {}",
        bars.iter()
            .map(|b| format!("{} {}", b.label, b.value_text))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let rows = bars
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let y = top + row_h * i as f64;
            let w = x(b.value) - plot_left;
            let tip = format!("{}: {}", b.label, b.value_text);
            let label = short_label(&b.label, layout.label_chars);
            // Narrow: label on its own line, the bar and its value below it.
            let (label_x, label_y, anchor, bar_y, bar_h, value_y) = if layout.labels_above {
                (plot_left, y + 13.0, "start", y + 18.0, 16.0, y + 31.0)
            } else {
                (plot_left - 6.0, y + 16.0, "end", y + 3.0, row_h - 6.0, y + 16.0)
            };
            view! {
                <text class="bar-label" x=label_x y=label_y text-anchor=anchor>{label}</text>
                <rect class="bar" x=plot_left y=bar_y width=w height=bar_h><title>{tip}</title></rect>
                <text class="bar-value" x=x(b.value) + 6.0 y=value_y>{b.value_text.clone()}</text>
            }
        })
        .collect_view();
    let axis_y = top + row_h * bars.len() as f64;
    let tick_views = ticks
        .iter()
        .map(|&t| {
            let tx = x(t);
            // The first label starts at the axis' left end when there is no margin for it.
            let anchor = if tx < 12.0 { "start" } else { "middle" };
            view! {
                <line class="tick" x1=tx x2=tx y1=axis_y y2=axis_y + 5.0 />
                <text class="tick-label" x=tx y=axis_y + 18.0 text-anchor=anchor>{tick_label(t)}</text>
            }
        })
        .collect_view();
    let view_box = format!("0 0 {width} {height}");
    let aria = description.clone();
    view! {
        <svg class="chart bar-chart" viewBox=view_box role="img" aria-label=aria>
            <title>{title.to_string()}</title>
            <desc>{description}</desc>
            <line class="axis" x1=plot_left x2=plot_left + plot_width y1=axis_y y2=axis_y />
            {rows}
            {tick_views}
            <text class="axis-label" x=plot_left + plot_width / 2.0 y=axis_y + 36.0 text-anchor="middle">{unit.to_string()}</text>
        </svg>
    }
}

/// A point of a [`LineChart`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// X value in the chart's x unit.
    pub x: f64,
    /// Y value in the chart's y unit.
    pub y: f64,
}

/// A line through measured points, with an optional marked stopping point (the sweep chart).
#[component]
pub fn LineChart(
    /// Chart title.
    title: String,
    /// X axis label with unit.
    x_unit: String,
    /// Y axis label with unit.
    y_unit: String,
    /// Points in x order.
    points: Vec<Point>,
    /// The stopping point to mark, with its reason.
    stop: Option<(Point, String)>,
) -> impl IntoView {
    let node = NodeRef::<Div>::new();
    let width = box_width(node);
    view! {
        <div class="chart-box" node_ref=node>
            {move || line_chart_svg(width.get(), &title, &x_unit, &y_unit, &points, stop.as_ref())}
        </div>
    }
}

/// [`LineChart`] drawn `width` units wide.
fn line_chart_svg(
    width: f64,
    title: &str,
    x_unit: &str,
    y_unit: &str,
    points: &[Point],
    stop: Option<&(Point, String)>,
) -> impl IntoView + use<> {
    let x_max = points
        .iter()
        .map(|p| p.x)
        .chain(stop.iter().map(|s| s.0.x))
        .fold(0.0, f64::max);
    let y_max = points
        .iter()
        .map(|p| p.y)
        .chain(stop.iter().map(|s| s.0.y))
        .fold(0.0, f64::max);
    let x_ticks = nice_ticks(x_max);
    let y_ticks = nice_ticks(y_max);
    let xs = x_ticks
        .last()
        .copied()
        .unwrap_or(1.0)
        .max(f64::MIN_POSITIVE);
    let ys = y_ticks
        .last()
        .copied()
        .unwrap_or(1.0)
        .max(f64::MIN_POSITIVE);
    let (left, right, top, bottom) = (60.0, 20.0, 20.0, 50.0);
    // Keep a phone's chart from being taller than it is wide.
    let height = (width * 0.75).clamp(220.0, 300.0);
    let pw = width - left - right;
    let ph = height - top - bottom;
    let px = move |v: f64| left + v / xs * pw;
    let py = move |v: f64| top + ph - v / ys * ph;
    let path: String = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", px(p.x), py(p.y)))
        .collect::<Vec<_>>()
        .join(" ");
    let description = format!(
        "{title}: {} points ({x_unit} vs {y_unit}): {}{}",
        points.len(),
        points
            .iter()
            .map(|p| format!("({:.2}, {:.3})", p.x, p.y))
            .collect::<Vec<_>>()
            .join(" "),
        stop.as_ref()
            .map(|(p, why)| format!("; stopped at {:.2}: {why}", p.x))
            .unwrap_or_default()
    );
    let dots = points
        .iter()
        .map(|p| {
            let tip = format!("{:.2} {x_unit}: {:.3} {y_unit}", p.x, p.y);
            view! { <circle class="dot" cx=px(p.x) cy=py(p.y) r=3.5><title>{tip}</title></circle> }
        })
        .collect_view();
    let stop_view = stop.map(|(p, why)| {
        let sx = px(p.x);
        let text = format!("stop: {why}");
        let anchor = label_anchor(sx, &text, width - right);
        view! {
            <line class="marker-stop" x1=sx x2=sx y1=top y2=top + ph />
            <text class="marker-label" x=sx y=top + 12.0 text-anchor=anchor>{text}</text>
        }
    });
    let xt = x_ticks
        .iter()
        .map(|&t| {
            view! { <text class="tick-label" x=px(t) y=top + ph + 18.0 text-anchor="middle">{tick_label(t)}</text> }
        })
        .collect_view();
    let yt = y_ticks
        .iter()
        .map(|&t| {
            view! {
                <line class="grid" x1=left x2=left + pw y1=py(t) y2=py(t) />
                <text class="tick-label" x=left - 6.0 y=py(t) + 4.0 text-anchor="end">{tick_label(t)}</text>
            }
        })
        .collect_view();
    let view_box = format!("0 0 {width} {height}");
    let aria = description.clone();
    let y_label_transform = format!("rotate(-90 14 {})", top + ph / 2.0);
    view! {
        <svg class="chart line-chart" viewBox=view_box role="img" aria-label=aria>
            <title>{title.to_string()}</title>
            <desc>{description}</desc>
            {yt}
            <polyline class="line" points=path />
            {dots}
            {stop_view}
            {xt}
            <text class="axis-label" x=left + pw / 2.0 y=height - 10.0 text-anchor="middle">{x_unit.to_string()}</text>
            <text class="axis-label" x=14 y=top + ph / 2.0 text-anchor="middle" transform=y_label_transform>{y_unit.to_string()}</text>
        </svg>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_maximum_with_round_steps() {
        assert_eq!(nice_ticks(10.0), vec![0.0, 5.0, 10.0]);
        assert_eq!(nice_ticks(7.3), vec![0.0, 2.0, 4.0, 6.0, 8.0]);
        let t = nice_ticks(123.0);
        assert!(*t.last().unwrap() >= 123.0 && t.len() <= 7, "{t:?}");
        assert_eq!(nice_ticks(0.0), vec![0.0, 1.0]);
        assert_eq!(nice_ticks(f64::NAN), vec![0.0, 1.0]);
        assert_eq!(tick_label(0.0002), "0.0002");
        assert_eq!(tick_label(0.25), "0.25");
        assert_eq!(tick_label(2.5), "2.5");
        assert_eq!(short_label("abcdef", 4), "abc…");
        assert_eq!(short_label("abc", 4), "abc");
    }

    #[test]
    fn charts_are_drawn_at_their_box_width_and_bars_keep_room_for_values() {
        // A 390 px phone: the chart box is 328 px, drawn 328 units wide (text at its CSS size).
        assert_eq!(layout_width(328.0), 328.0);
        assert_eq!(layout_width(1000.0), WIDTH);
        assert_eq!(layout_width(100.0), MIN_WIDTH);
        assert_eq!(layout_width(0.0), WIDTH);
        assert_eq!(layout_width(f64::NAN), WIDTH);
        let phone = BarLayout::for_width(328.0, 15);
        assert!(phone.labels_above);
        // The longest bar's value label ("199.738 MFLOP/s") fits after the bar.
        assert!(phone.plot_left + phone.plot_width + 6.0 + 15.0 * CHAR_PX <= 328.0 + 1e-9);
        assert!(phone.label_chars >= 40, "{phone:?}");
        let desktop = BarLayout::for_width(WIDTH, 12);
        assert!(!desktop.labels_above);
        assert_eq!(desktop.plot_width, WIDTH - LABEL_WIDTH - VALUE_WIDTH);
        // A marker label goes after its line only where it fits.
        assert_eq!(label_anchor(250.0, "usable 21.6 GiB", 640.0), "start");
        assert_eq!(label_anchor(250.0, "usable 21.6 GiB", 328.0), "end");
        // The longest label fits the column left of the bars.
        assert!(desktop.label_chars as f64 * CHAR_PX <= LABEL_WIDTH - 6.0);
    }
}
