//! Line charts as PNG and SVG with plotters, drawn with the font bundled in the project.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

/// DejaVu Sans, shipped in `host/assets` (its license beside it): no system fonts are used.
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled file is a valid TrueType font; a failure here would be a broken build.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// One named line.
pub struct Series<'a> {
    /// Legend text.
    pub name: &'a str,
    /// `(x, y)` points in order.
    pub points: Vec<(f64, f64)>,
    /// Dashed instead of solid.
    pub dashed: bool,
}

/// A chart: title, axis labels and lines.
pub struct Chart<'a> {
    /// Caption.
    pub title: &'a str,
    /// X axis label.
    pub x_label: &'a str,
    /// Y axis label.
    pub y_label: &'a str,
    /// The lines.
    pub series: Vec<Series<'a>>,
    /// Logarithmic x axis.
    pub log_x: bool,
}

/// Writes `<stem>.png` and `<stem>.svg`.
pub fn write(chart: &Chart<'_>, stem: &Path) -> anyhow::Result<()> {
    register_font();
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    draw(chart, BitMapBackend::new(&png, (900, 560)).into_drawing_area())?;
    draw(chart, SVGBackend::new(&svg, (900, 560)).into_drawing_area())?;
    Ok(())
}

/// Axis numbers as people write them: `10`, not `10.0`; `0.2`, not `0.20000000000000001`.
fn axis_label(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{}", x as f32)
    }
}

fn draw<DB: DrawingBackend>(chart: &Chart<'_>, root: DrawingArea<DB, Shift>) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("drawing {}: {e:?}", chart.title);
    root.fill(&WHITE).map_err(err)?;
    let points = chart.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in points {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let mut builder = ChartBuilder::on(&root);
    builder.caption(chart.title, (FAMILY, 22)).margin(12).x_label_area_size(40).y_label_area_size(60);
    macro_rules! finish {
        ($ctx:expr) => {{
            let mut ctx = $ctx;
            ctx.configure_mesh()
                .x_desc(chart.x_label)
                .x_label_formatter(&|x| axis_label(*x))
                .y_desc(chart.y_label)
                .label_style((FAMILY, 14))
                .draw()
                .map_err(err)?;
            for (i, s) in chart.series.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                let style = color.stroke_width(2);
                let points = s.points.iter().copied();
                if s.dashed {
                    ctx.draw_series(DashedLineSeries::new(points, 6, 4, style)).map_err(err)?
                } else {
                    ctx.draw_series(LineSeries::new(points, style)).map_err(err)?
                }
                .label(s.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            }
            ctx.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font((FAMILY, 14))
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(err)?;
        }};
    }
    if chart.log_x {
        finish!(builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1).map_err(err)?);
    } else {
        finish!(builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?);
    }
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels_print_epochs_as_integers() {
        assert_eq!(axis_label(10.0), "10");
        assert_eq!(axis_label(0.2), "0.2");
        assert_eq!(axis_label(0.00001), "0.00001");
    }
}
