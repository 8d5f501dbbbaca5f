//! Trains the intent classifier on a labelled file, predicts a test file and prints one JSON line:
//!
//! ```text
//! cargo run --release --example bot_eval -- --train TRAIN.jsonl --test TEST.jsonl
//! {"train":..,"test":..,"labels":..,"accuracy":..,"macro_f1":..,"train_secs":..,"p50_us":..,"p99_us":..}
//! ```
//!
//! Files are JSONL (`{"text": ..., "label": ...}`) or CSV with a header (`text,category`).
//! The same split is also measured with the classical baseline (word-unigram TF-IDF + logistic
//! regression); its line goes to stderr, after the progress, unless `--no-baseline` is given.

use std::io::Write;
use std::time::Instant;

use cs_bot::{
    ClassifierBuilder, Evaluation, Example, TrainProgress, TrainStage, evaluate, read_examples,
};

struct Args {
    train: String,
    test: String,
    baseline: bool,
    threshold: f32,
}

fn parse_args() -> Result<Args, String> {
    let mut train = None;
    let mut test = None;
    let mut baseline = true;
    let mut threshold = 0.3;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--train" => train = it.next(),
            "--test" => test = it.next(),
            "--no-baseline" => baseline = false,
            "--threshold" => {
                threshold = it
                    .next()
                    .and_then(|t| t.parse().ok())
                    .ok_or("--threshold needs a number")?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        train: train.ok_or("--train FILE is required")?,
        test: test.ok_or("--test FILE is required")?,
        baseline,
        threshold,
    })
}

fn progress(name: &'static str) -> impl Fn(&TrainProgress) + Send + Sync + 'static {
    move |p: &TrainProgress| {
        let stage = match p.stage {
            TrainStage::Features => "features",
            TrainStage::Calibration => "calibration",
            TrainStage::Training => "training",
            _ => "other",
        };
        eprint!("\r[{name}] {stage:<11} {:>5}/{:<5}", p.done, p.total);
        if p.done == p.total {
            eprintln!();
        }
        let _ = std::io::stderr().flush();
    }
}

fn run(builder: ClassifierBuilder, train: &[Example], test: &[Example]) -> (String, Evaluation) {
    let start = Instant::now();
    let clf = match builder.train(train) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("training failed: {e}");
            std::process::exit(1);
        }
    };
    let train_secs = start.elapsed().as_secs_f64();
    let ev = evaluate(&clf, test);
    let line = format!(
        "{{\"train\":{},\"test\":{},\"labels\":{},\"accuracy\":{:.4},\"macro_f1\":{:.4},\"train_secs\":{:.3},\"p50_us\":{:.1},\"p99_us\":{:.1}}}",
        train.len(),
        test.len(),
        clf.labels().len(),
        ev.accuracy,
        ev.macro_f1,
        train_secs,
        ev.p50_us,
        ev.p99_us
    );
    (line, ev)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "{e}\nusage: bot_eval --train TRAIN.jsonl --test TEST.jsonl [--threshold 0.3] [--no-baseline]"
            );
            std::process::exit(2);
        }
    };
    let load = |p: &str| match read_examples(p) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{p}: {e}");
            std::process::exit(1);
        }
    };
    let train = load(&args.train);
    let test = load(&args.test);
    let (line, _) = run(
        ClassifierBuilder::new()
            .with_threshold(args.threshold)
            .with_progress(progress("omnidesk")),
        &train,
        &test,
    );
    if args.baseline {
        let (base, _) = run(
            ClassifierBuilder::baseline().with_progress(progress("baseline")),
            &train,
            &test,
        );
        eprintln!("baseline (TF-IDF words + logistic regression): {base}");
    }
    println!("{line}");
}
