//! How training is watched for divergence: the rule that finds a step that diverged, and the
//! message that says so. [`crate::session::Session`] applies it to every chunk of steps and
//! brings back the weights from before that step, whatever the chunking.
//!
//! A step's update is judged by the loss the next step computes with it (before its own update),
//! and by whether the weights it made are finite. The update diverged when that loss is not
//! finite or is over the limit: three times the larger of ln(classes) (a uniform guess) and the
//! loss the run started from (the first step after the network was loaded). That is the rule of
//! thumb of CS231n's hyperparameter search ("if the cost is ever > 3 × the original cost, break
//! out early"), with chance level as a floor so that a trained net (loss near 0) may still have
//! noisy batches. The last step of a chunk is judged by the next chunk's first loss, or by
//! [`crate::session::Session::check_last_step`] (a Step, a pause, the end of a CLI run).

use crate::Error;
use crate::train::{Method, TrainConfig};

/// The loss a step may not exceed.
pub fn limit(start_loss: f32, classes: usize) -> f32 {
    3.0 * start_loss.max((classes.max(2) as f32).ln())
}

/// The first bad loss's index (its step's update is fine; the update before it diverged), or
/// `losses.len()` when only the weights after the last step are not finite.
pub fn first_bad(losses: &[f32], weights_finite: bool, limit: f32) -> Option<usize> {
    losses.iter().position(|&l| !l.is_finite() || l > limit).or((!weights_finite).then_some(losses.len()))
}

/// A learning rate to suggest after `config` diverged: a tenth of it, at most the default.
pub fn suggested_rate(config: &TrainConfig) -> f64 {
    let rate = (config.learning_rate / 10.0).min(TrainConfig::default().learning_rate);
    // One significant digit.
    let p = 10f64.powf(rate.log10().floor());
    (rate / p).floor().max(1.0) * p
}

/// Step `step` (counted from 1 since the network was loaded) diverged: the loss went from `from`
/// (before it; `None` if unknown) to `to` (after it; `None`: the weights it made are not finite).
pub fn diverged(step: u64, from: Option<f32>, to: Option<f32>, limit: f32, config: &TrainConfig) -> Error {
    let what = match (from, to) {
        (_, None) => format!("step {} made a weight non-finite", count(step)),
        (Some(a), Some(b)) if b.is_finite() => format!(
            "step {} raised the loss from {} to {} (over {}: three times the larger of ln(classes) and the loss training started from)",
            count(step),
            num(a),
            num(b),
            num(limit)
        ),
        (Some(a), Some(b)) => format!("step {} made the loss {} (it was {})", count(step), num(b), num(a)),
        (None, Some(b)) => format!("step {} made the loss {}", count(step), num(b)),
    };
    let (advice, rate) = if config.method == Method::Adadelta {
        ("Adadelta has no learning rate: try another method".to_string(), None)
    } else {
        let rate = suggested_rate(config);
        (format!("lower the learning rate ({}): try {}", num(config.learning_rate as f32), num(rate as f32)), Some(rate))
    };
    Error::Diverged(format!("training diverged: {what}. The weights are back to before step {}; {advice}.", count(step)), rate)
}

/// The loss of the network before any step already over the limit (or not finite).
pub fn bad_start(loss: f32, limit: f32) -> Error {
    Error::Diverged(
        format!(
            "training diverged before it started: the loss of this batch is {} before any step (the limit is {}): the weights give unusable scores; nothing was changed",
            num(loss),
            num(limit)
        ),
        None,
    )
}

fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn num(x: f32) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let a = x.abs();
    if a != 0.0 && !(1e-3..1e4).contains(&a) {
        let s = format!("{x:.2e}");
        let (mantissa, exp) = s.split_once('e').expect("an exponent");
        format!("{}e{exp}", mantissa.trim_end_matches('0').trim_end_matches('.'))
    } else {
        let s = format!("{x:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        let l = limit(0.01, 10);
        assert!((l - 3.0 * 10f32.ln()).abs() < 1e-6);
        assert_eq!(limit(5.0, 10), 15.0);
        assert_eq!(first_bad(&[0.1, 0.2, 6.0], true, l), None);
        assert_eq!(first_bad(&[0.1, 7.0, f32::NAN], true, l), Some(1));
        assert_eq!(first_bad(&[f32::NAN], true, l), Some(0));
        assert_eq!(first_bad(&[0.1, 0.2], false, l), Some(2));
        let c = |lr| TrainConfig { learning_rate: lr, ..Default::default() };
        assert_eq!(suggested_rate(&c(1e6)), 0.01);
        assert!((suggested_rate(&c(0.05)) - 0.005).abs() < 1e-12);
        assert!((suggested_rate(&c(0.003)) - 0.0003).abs() < 1e-12);
        assert_eq!(num(48123.0), "4.81e4");
        assert_eq!(num(0.0123), "0.0123");
        assert_eq!(count(1205), "1,205");
        let m = diverged(1205, Some(0.0123), Some(48123.0), l, &c(1e6)).to_string();
        assert!(m.contains("step 1,205 raised the loss from 0.0123 to 4.81e4"), "{m}");
        assert!(m.contains("back to before step 1,205; lower the learning rate (1e6): try 0.01."), "{m}");
        assert_eq!(num(1e-5), "1e-5");
    }
}
