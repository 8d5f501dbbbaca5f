//! How many agents an interval needs, by Erlang C (or Erlang A with `--patience-secs`).
//!
//! ```text
//! cargo run --example staffing -- --calls 100 --interval-secs 1800 --aht-secs 180 \
//!     --target 0.8 --within-secs 20 --shrinkage 0.3
//! {"agents":20,"service_level":0.8884,"p_wait":0.1741,"asa_secs":7.84,"occupancy":0.7143,...}
//! ```
//!
//! Options: `--calls N` arrivals in the interval, `--interval-secs S`, `--aht-secs A` average
//! handle time, `--target 0.8` share answered within `--within-secs T`, optional `--shrinkage X`
//! (share of paid time unavailable), `--concurrency C` (chats an agent holds at once) and
//! `--patience-secs P` (customers' mean patience: Erlang A). Prints one JSON line.

use omnidesk::analytics::staffing::{Staffing, StaffingInput};

fn main() {
    match run(std::env::args().skip(1).collect()) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("staffing: {e}");
            eprintln!(
                "usage: staffing --calls N --interval-secs S --aht-secs A --target 0.8 \
                 --within-secs T [--shrinkage X] [--concurrency C] [--patience-secs P]"
            );
            std::process::exit(2);
        }
    }
}

fn run(args: Vec<String>) -> Result<String, String> {
    let mut calls = None;
    let mut interval = None;
    let mut aht = None;
    let mut target = None;
    let mut within = None;
    let mut shrinkage = 0.0;
    let mut concurrency = 1u32;
    let mut patience = None;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<f64>()
                .map_err(|_| format!("{flag}: {value:?} is not a number"))
        };
        match flag.as_str() {
            "--calls" => calls = Some(number()?),
            "--interval-secs" => interval = Some(number()?),
            "--aht-secs" => aht = Some(number()?),
            "--target" => target = Some(number()?),
            "--within-secs" => within = Some(number()?),
            "--shrinkage" => shrinkage = number()?,
            "--concurrency" => {
                concurrency = value
                    .parse()
                    .map_err(|_| format!("--concurrency: {value:?} is not a whole number"))?
            }
            "--patience-secs" => patience = Some(number()?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    let need = |v: Option<f64>, name: &str| v.ok_or_else(|| format!("{name} is required"));
    let mut input = StaffingInput::new(
        need(calls, "--calls")?,
        need(interval, "--interval-secs")?,
        need(aht, "--aht-secs")?,
        need(target, "--target")?,
        need(within, "--within-secs")?,
    )
    .with_shrinkage(shrinkage)
    .with_concurrency(concurrency);
    if let Some(p) = patience {
        input = input.with_patience(p);
    }
    let plan = if patience.is_some() {
        Staffing::erlang_a(&input)
    } else {
        Staffing::erlang_c(&input)
    }
    .map_err(|e| e.to_string())?;
    let round = |x: f64, places: i32| {
        let f = 10f64.powi(places);
        (x * f).round() / f
    };
    // The issue's field order first, then the details.
    Ok(format!(
        "{{\"agents\":{},\"service_level\":{},\"p_wait\":{},\"asa_secs\":{},\"occupancy\":{},\
         \"on_floor\":{},\"servers\":{},\"p_abandon\":{},\"traffic\":{}}}",
        plan.agents,
        round(plan.service_level, 4),
        round(plan.p_wait, 4),
        round(plan.asa_secs, 2),
        round(plan.occupancy, 4),
        plan.on_floor,
        plan.servers,
        round(plan.p_abandon, 4),
        round(plan.traffic, 4),
    ))
}
