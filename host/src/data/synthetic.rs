//! Synthetic data of a real model's shape, for when the real recordings are not at hand: machine
//! sounds as MLPerf Tiny's anomaly detector sees them, five frames of 128 log-mel bins (640
//! values) per row. A normal row is a machine at some speed and load: a noise floor, harmonics of
//! its rotation, drifting a little from frame to frame. An anomalous row adds what a failing part
//! adds: a resonance between the harmonics, or a burst of broadband noise. Reproducible from a
//! seed; the last column, `anomaly`, flags the anomalous rows (evaluation only).

use std::fmt::Write as _;

/// Frames per row and log-mel bins per frame, MLPerf Tiny's anomaly-detection input.
pub const FRAMES: usize = 5;
/// Log-mel bins per frame.
pub const BINS: usize = 128;

/// A small, fast, reproducible generator (xorshift64*).
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal draw (Box–Muller).
    fn normal(&mut self) -> f64 {
        (-2.0 * self.next().max(1e-12).ln()).sqrt() * (std::f64::consts::TAU * self.next()).cos()
    }
}

/// `normal` normal rows and `anomalous` anomalous ones (every `normal / anomalous`-th row), as
/// a CSV with a header: `f0 .. f639, anomaly`.
pub fn machine_frames_csv(normal: usize, anomalous: usize, seed: u64) -> String {
    let mut draw = Draw(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut out: String = (0..FRAMES * BINS).map(|i| format!("f{i},")).collect();
    out.push_str("anomaly\n");
    let rows = normal + anomalous;
    let every = rows.checked_div(anomalous).unwrap_or(usize::MAX);
    for r in 0..rows {
        let anomaly = anomalous > 0 && r % every == every - 1 && r / every < anomalous;
        let speed = 6.0 + 2.0 * draw.next();
        let load = draw.next();
        let (resonance, burst) = if anomaly {
            if draw.next() < 0.5 {
                (Some(speed * (2.5 + draw.next().floor()) + 1.5 * draw.normal()), None)
            } else {
                (None, Some((draw.next() * FRAMES as f64) as usize))
            }
        } else {
            (None, None)
        };
        for frame in 0..FRAMES {
            let drift = 0.05 * draw.normal();
            for bin in 0..BINS {
                let b = bin as f64;
                let mut level = -4.0 + 0.01 * b + 0.3 * draw.normal();
                for k in 1..=8 {
                    let centre = speed * (1.0 + drift) * k as f64;
                    let amplitude = (3.0 + 2.0 * load) / k as f64;
                    level += amplitude * (-((b - centre) / 1.5).powi(2)).exp();
                }
                if let Some(at) = resonance {
                    level += 3.0 * (-((b - at) / 2.0).powi(2)).exp();
                }
                if burst == Some(frame) {
                    level += 1.5 + 0.5 * draw.normal();
                }
                let _ = write!(out, "{level:.4},");
            }
        }
        out.push_str(if anomaly { "1\n" } else { "0\n" });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_detectors_shape_and_flag_their_anomalies() {
        let csv = machine_frames_csv(40, 4, 7);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 45);
        assert_eq!(lines[0].split(',').count(), 641);
        let flags: Vec<&str> = lines[1..].iter().map(|l| l.rsplit(',').next().unwrap()).collect();
        assert_eq!(flags.iter().filter(|f| **f == "1").count(), 4);
        assert_eq!(csv, machine_frames_csv(40, 4, 7), "one seed, one data set");
        assert_ne!(csv, machine_frames_csv(40, 4, 8));
    }
}
