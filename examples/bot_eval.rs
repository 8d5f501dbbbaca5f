//! Trains the intent classifier on a labelled file, predicts a test file and prints one JSON line:
//!
//! ```text
//! cargo run --release --example bot_eval -- --train TRAIN.jsonl --test TEST.jsonl
//! {"train":..,"test":..,"labels":..,"accuracy":..,"macro_f1":..,"train_secs":..,"p50_us":..,"p99_us":..,
//!  "threshold":..,"in_scope_accuracy":..,"oos_recall":..,"chosen":{..}}
//! ```
//!
//! Files are JSONL (`{"text": ..., "label": ...}`) or CSV with a header (`text,category`).
//! Lines labelled `oos` are out of scope: in the training file they train the out-of-scope
//! class (a knowledge file's out-of-scope section), in the test file they add
//! `"in_scope_accuracy"` (in-scope lines answered right, a false out-of-scope counting wrong)
//! and `"oos_recall"` (out-of-scope lines flagged). `"accuracy"` and `"macro_f1"` are over the
//! in-scope lines, by top label. `"chosen"` holds the hyper-parameters model selection chose
//! from the training data, with the held-out figures it chose them on.
//!
//! Options:
//! - `--threshold T`: a fixed out-of-scope threshold instead of the one chosen from data;
//! - `--max-loss L`: the share of held-out in-scope accuracy the chosen threshold may cost
//!   (default 0.01);
//! - `--no-search`: the first wave's fixed model (rich features, SVM C = 1);
//! - `--save PATH` / `--load PATH`: save the trained model, or evaluate a saved one;
//! - `--no-baseline`: skip the in-process baseline (word-unigram TF-IDF + logistic regression,
//!   printed to stderr). The scikit-learn baselines are `cs-bot/eval/baselines.py`.
//!
//! A progress bar goes to stderr.

use std::io::Write;
use std::time::Instant;

use cs_bot::{
    ClassifierBuilder, Evaluation, Example, IntentClassifier, TrainProgress, TrainStage, evaluate,
    read_examples,
};

struct Args {
    train: String,
    test: String,
    baseline: bool,
    threshold: Option<f32>,
    max_loss: f32,
    search: bool,
    save: Option<String>,
    load: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        train: String::new(),
        test: String::new(),
        baseline: true,
        threshold: None,
        max_loss: 0.01,
        search: true,
        save: None,
        load: None,
    };
    let mut it = std::env::args().skip(1);
    let num = |v: Option<String>, name: &str| -> Result<f32, String> {
        v.and_then(|t| t.parse().ok())
            .ok_or(format!("{name} needs a number"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--train" => a.train = it.next().unwrap_or_default(),
            "--test" => a.test = it.next().unwrap_or_default(),
            "--no-baseline" => a.baseline = false,
            "--no-search" => a.search = false,
            "--threshold" => a.threshold = Some(num(it.next(), "--threshold")?),
            "--max-loss" => a.max_loss = num(it.next(), "--max-loss")?,
            "--save" => a.save = it.next(),
            "--load" => a.load = it.next(),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.test.is_empty() || (a.train.is_empty() && a.load.is_none()) {
        return Err("--test FILE and --train FILE (or --load MODEL) are required".into());
    }
    Ok(a)
}

/// A progress bar on stderr: `[omnidesk] selection [#######.............] 7/20`.
fn progress(name: &'static str) -> impl Fn(&TrainProgress) + Send + Sync + 'static {
    // Redraw only when the bar moves (the stage and the filled width, packed).
    let last = std::sync::atomic::AtomicUsize::new(usize::MAX);
    move |p: &TrainProgress| {
        let stage = match p.stage {
            TrainStage::Features => "features",
            TrainStage::Calibration => "calibration",
            TrainStage::Training => "training",
            TrainStage::Selection => "selection",
            _ => "other",
        };
        let width = 30;
        let filled = (p.done * width).checked_div(p.total).unwrap_or(width);
        let key = (p.stage as usize) << 16 | filled;
        if last.swap(key, std::sync::atomic::Ordering::Relaxed) == key && p.done != p.total {
            return;
        }
        eprint!(
            "\r[{name}] {stage:<11} [{}{}] {:>4}/{:<4}",
            "#".repeat(filled),
            ".".repeat(width - filled),
            p.done,
            p.total
        );
        if p.done == p.total {
            eprintln!();
        }
        let _ = std::io::stderr().flush();
    }
}

fn line(train: usize, clf: &IntentClassifier, ev: &Evaluation, train_secs: f64) -> String {
    let mut out = format!(
        "{{\"train\":{},\"test\":{},\"labels\":{},\"accuracy\":{:.4},\"macro_f1\":{:.4},\"train_secs\":{:.3},\"p50_us\":{:.1},\"p99_us\":{:.1},\"threshold\":{:.4}",
        train,
        ev.examples,
        clf.labels().len(),
        ev.accuracy,
        ev.macro_f1,
        train_secs,
        ev.p50_us,
        ev.p99_us,
        clf.threshold()
    );
    if let (Some(a), Some(r)) = (ev.in_scope_accuracy, ev.oos_recall) {
        out.push_str(&format!(
            ",\"in_scope_accuracy\":{a:.4},\"oos_recall\":{r:.4}"
        ));
    }
    let s = clf.selection();
    let chosen = serde_json::json!({
        "features": s.features,
        "model": s.model,
        "scale": s.scale,
        "threshold_rule": s.threshold_rule,
        "folds": s.folds,
        "folds_scored": s.folds_scored,
        "held_out": s.held_out,
        "validation_accuracy": s.validation_accuracy,
        "held_out_in_scope_loss": s.held_out_in_scope_loss,
        "held_out_oos_recall": s.held_out_oos_recall,
        "trials": s.trials.iter().map(|t| {
            let f = &t.features;
            format!(
                "w{}-{} cl{}-{} cj{}-{}{} {:?}: {:.4}",
                f.word.0, f.word.1, f.char_latin.0, f.char_latin.1, f.char_cjk.0, f.char_cjk.1,
                if f.sublinear_tf { "" } else { " rawtf" },
                t.model, t.accuracy
            )
        }).collect::<Vec<_>>(),
    });
    out.push_str(&format!(",\"chosen\":{chosen}}}"));
    out
}

fn train(builder: ClassifierBuilder, train: &[Example]) -> (IntentClassifier, f64) {
    let start = Instant::now();
    match builder.train(train) {
        Ok(c) => (c, start.elapsed().as_secs_f64()),
        Err(e) => {
            eprintln!("training failed: {e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "{e}\nusage: bot_eval --train TRAIN.jsonl --test TEST.jsonl [--threshold T | --max-loss L] [--no-search] [--save MODEL | --load MODEL] [--no-baseline]"
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
    let test = load(&args.test);
    let (clf, train_lines, secs) = match &args.load {
        Some(path) => {
            let start = Instant::now();
            let clf = IntentClassifier::load_file(path).unwrap_or_else(|e| {
                eprintln!("{path}: {e}");
                std::process::exit(1);
            });
            eprintln!("loaded {path} in {:.3} s", start.elapsed().as_secs_f64());
            let clf = match args.threshold {
                Some(t) => clf.with_threshold(t),
                None => clf,
            };
            (clf, 0, 0.0)
        }
        None => {
            let lines = load(&args.train);
            let mut b = ClassifierBuilder::new()
                .with_search(args.search)
                .with_auto_threshold(args.max_loss)
                .with_progress(progress("omnidesk"));
            if let Some(t) = args.threshold {
                b = b.with_threshold(t);
            }
            let (clf, secs) = train(b, &lines);
            (clf, lines.len(), secs)
        }
    };
    if let Some(path) = &args.save
        && let Err(e) = clf.save_file(path)
    {
        eprintln!("{path}: {e}");
        std::process::exit(1);
    }
    let ev = evaluate(&clf, &test);
    let ours = line(train_lines, &clf, &ev, secs);
    if args.baseline && args.load.is_none() {
        let lines = load(&args.train);
        let (base, secs) = train(
            ClassifierBuilder::baseline().with_progress(progress("baseline")),
            &lines,
        );
        let bev = evaluate(&base, &test);
        eprintln!(
            "baseline (TF-IDF words + logistic regression): {}",
            line(lines.len(), &base, &bev, secs)
        );
    }
    println!("{ours}");
}
