//! The service configuration file (TOML): size and depth checks, then the parser; a config
//! that loads is checked as the service does at start-up (business hours, agents, the
//! environment overrides).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(mut config) = omnidesk::Config::from_toml(text) {
        let _ = config.hours();
        let _ = config.postgres_url();
        let tenant = cs_core::TenantId::default();
        for agent in &config.agents {
            let _ = agent.to_agent(&tenant);
        }
        let _ = config.apply_env(|k| (k == "OMNIDESK_PORT").then(|| "8081".to_owned()));
    }
});
