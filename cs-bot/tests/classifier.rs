//! Classifier quality on held-out data, against the classical baseline trained on the same split.

use std::collections::HashMap;

use cs_bot::{ClassifierBuilder, Example, evaluate, parse_faq, read_examples};

/// Every `k`-th example of each label is held out.
fn split(all: &[Example], k: usize) -> (Vec<Example>, Vec<Example>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for e in all {
        let n = seen.entry(e.label.as_str()).or_default();
        *n += 1;
        if (*n).is_multiple_of(k) {
            test.push(e.clone());
        } else {
            train.push(e.clone());
        }
    }
    (train, test)
}

#[test]
fn bilingual_faq_questions_generalise_to_held_out_phrasings() {
    let faq = parse_faq(include_str!("../data/ecommerce_faq.txt")).unwrap();
    let all: Vec<Example> = faq
        .iter()
        .flat_map(|e| e.questions.iter().map(|q| Example::new(q, &e.intent)))
        .collect();
    let (train, test) = split(&all, 4);
    let ours = ClassifierBuilder::new().train(&train).unwrap();
    let ev = evaluate(&ours, &test);
    let base = evaluate(&ClassifierBuilder::baseline().train(&train).unwrap(), &test);
    println!(
        "faq held-out: ours {:.3} / baseline {:.3} on {} questions",
        ev.accuracy, base.accuracy, ev.examples
    );
    assert!(ev.examples >= 40);
    assert!(ev.accuracy >= 0.5, "{ev:?}");
    assert!(ev.accuracy >= base.accuracy, "{ev:?} vs {base:?}");
}

/// Banking77 (English, 77 intents): set `CS_TEST_BANKING77_DIR` to a directory with `train.csv`
/// and `test.csv` (`text,category`). A class-balanced subsample keeps the debug-build test fast.
#[test]
fn banking77_beats_the_tfidf_logistic_regression_baseline() {
    let Ok(dir) = std::env::var("CS_TEST_BANKING77_DIR") else {
        eprintln!("skipping: CS_TEST_BANKING77_DIR is not set");
        return;
    };
    let train = read_examples(format!("{dir}/train.csv")).unwrap();
    let test = read_examples(format!("{dir}/test.csv")).unwrap();
    let mut per: HashMap<String, usize> = HashMap::new();
    let train: Vec<Example> = train
        .into_iter()
        .filter(|e| {
            let n = per.entry(e.label.clone()).or_default();
            *n += 1;
            *n <= 40
        })
        .collect();
    let ours = evaluate(&ClassifierBuilder::new().train(&train).unwrap(), &test);
    let base = evaluate(&ClassifierBuilder::baseline().train(&train).unwrap(), &test);
    println!(
        "banking77 ({} train): ours acc {:.4} f1 {:.4}; baseline acc {:.4} f1 {:.4}",
        train.len(),
        ours.accuracy,
        ours.macro_f1,
        base.accuracy,
        base.macro_f1
    );
    assert!(ours.accuracy >= 0.80, "{ours:?}");
    assert!(
        ours.accuracy >= base.accuracy + 0.01,
        "{ours:?} vs {base:?}"
    );
}
