//! SVG charts drawn by our own components: a stacked memory bar, horizontal bar charts and the
//! allocation-sweep curve. Every chart has a `<title>`, an `aria-label` text alternative and axis
//! labels with units. Geometry lives in pure functions so it is tested natively.

use leptos::prelude::*;

/// Chart width in SVG user units; the SVG scales to its container (phone screens included).
const WIDTH: f64 = 640.0;
/// Left margin for bar labels.
const LABEL_WIDTH: f64 = 150.0;
/// Right margin for value labels.
const VALUE_WIDTH: f64 = 110.0;

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

/// Characters of a bar label that fit the label column at the chart's font size.
const MAX_LABEL_CHARS: usize = 22;

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
    let total: f64 = segments.iter().map(|s| s.value_gib).sum();
    let axis_max = markers
        .iter()
        .map(|m| m.at_gib)
        .fold(total, f64::max)
        .max(f64::MIN_POSITIVE);
    let ticks = nice_ticks(axis_max);
    let scale_max = ticks.last().copied().unwrap_or(axis_max);
    let plot_left = 10.0;
    let plot_width = WIDTH - 20.0;
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
            let anchor = if mx > WIDTH * 0.7 { "end" } else { "start" };
            let text = format!("{} {:.1} GiB", m.label, m.at_gib);
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
    let view_box = format!("0 0 {WIDTH} {height}");
    let aria = description.clone();
    view! {
        <svg class="chart stacked-bar" viewBox=view_box role="img" aria-label=aria>
            <title>{title.clone()}</title>
            <desc>{description}</desc>
            {rects}
            {marker_views}
            {tick_views}
            <text class="axis-label" x=WIDTH / 2.0 y=axis_y + 18.0 text-anchor="middle">"memory (GiB)"</text>
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
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let ticks = nice_ticks(max);
    let scale_max = ticks.last().copied().unwrap_or(1.0).max(f64::MIN_POSITIVE);
    let plot_width = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
    let row_h = 26.0;
    let top = 10.0;
    let height = top + row_h * bars.len() as f64 + 44.0;
    let x = move |v: f64| LABEL_WIDTH + v.max(0.0) / scale_max * plot_width;
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
            let w = x(b.value) - LABEL_WIDTH;
            let tip = format!("{}: {}", b.label, b.value_text);
            view! {
                <text class="bar-label" x=LABEL_WIDTH - 6.0 y=y + 16.0 text-anchor="end">{short_label(&b.label, MAX_LABEL_CHARS)}</text>
                <rect class="bar" x=LABEL_WIDTH y=y + 3.0 width=w height=row_h - 6.0><title>{tip}</title></rect>
                <text class="bar-value" x=x(b.value) + 6.0 y=y + 16.0>{b.value_text.clone()}</text>
            }
        })
        .collect_view();
    let axis_y = top + row_h * bars.len() as f64;
    let tick_views = ticks
        .iter()
        .map(|&t| {
            let tx = x(t);
            view! {
                <line class="tick" x1=tx x2=tx y1=axis_y y2=axis_y + 5.0 />
                <text class="tick-label" x=tx y=axis_y + 18.0 text-anchor="middle">{tick_label(t)}</text>
            }
        })
        .collect_view();
    let view_box = format!("0 0 {WIDTH} {height}");
    let aria = description.clone();
    view! {
        <svg class="chart bar-chart" viewBox=view_box role="img" aria-label=aria>
            <title>{title.clone()}</title>
            <desc>{description}</desc>
            <line class="axis" x1=LABEL_WIDTH x2=LABEL_WIDTH + plot_width y1=axis_y y2=axis_y />
            {rows}
            {tick_views}
            <text class="axis-label" x=LABEL_WIDTH + plot_width / 2.0 y=axis_y + 36.0 text-anchor="middle">{unit}</text>
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
    let height = 300.0;
    let pw = WIDTH - left - right;
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
        let anchor = if sx > WIDTH * 0.6 { "end" } else { "start" };
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
    let view_box = format!("0 0 {WIDTH} {height}");
    let aria = description.clone();
    let y_label_transform = format!("rotate(-90 14 {})", top + ph / 2.0);
    view! {
        <svg class="chart line-chart" viewBox=view_box role="img" aria-label=aria>
            <title>{title.clone()}</title>
            <desc>{description}</desc>
            {yt}
            <polyline class="line" points=path />
            {dots}
            {stop_view}
            {xt}
            <text class="axis-label" x=left + pw / 2.0 y=height - 10.0 text-anchor="middle">{x_unit.clone()}</text>
            <text class="axis-label" x=14 y=top + ph / 2.0 text-anchor="middle" transform=y_label_transform>{y_unit.clone()}</text>
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
}
