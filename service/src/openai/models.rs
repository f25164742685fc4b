//! OpenAI's announced model shutdowns, and the warning scribe gives at
//! startup when it is configured with one of those models.
//!
//! Source: the "Deprecated values" docstrings of OpenAI's generated types,
//! `openai` 3.57.0 on PyPI: `types/realtime/realtime_session_create_request.py`
//! (voice models), `types/realtime/audio_transcription.py` (transcription
//! models) and `types/shared/chat_model.py` (chat models). Each names its
//! shutdown date and points to <https://developers.openai.com/api/docs/deprecations>
//! for replacements; the replacement given here is a current model of the
//! same kind from the same types (no shutdown announced). GPT-Live's
//! models (`gpt-live-1`, `gpt-live-1.1`) have none announced. Refresh this
//! table with the types when OpenAI announces more.

use chrono::NaiveDate;

use crate::config::Settings;

/// One model OpenAI announced a shutdown for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retirement {
    pub model: &'static str,
    /// The announced shutdown date (`YYYY-MM-DD`).
    pub shutdown: &'static str,
    /// A current model of the same kind.
    pub replacement: &'static str,
}

const fn retired(
    model: &'static str,
    shutdown: &'static str,
    replacement: &'static str,
) -> Retirement {
    Retirement {
        model,
        shutdown,
        replacement,
    }
}

/// The announced shutdowns of the models scribe may be configured with.
pub const RETIREMENTS: &[Retirement] = &[
    // Realtime voice models.
    retired("gpt-realtime", "2027-01-20", "gpt-realtime-2.1"),
    retired("gpt-realtime-2025-08-28", "2027-01-20", "gpt-realtime-2.1"),
    retired("gpt-realtime-mini", "2027-01-20", "gpt-realtime-2.1-mini"),
    retired(
        "gpt-realtime-mini-2025-12-15",
        "2027-01-20",
        "gpt-realtime-2.1-mini",
    ),
    retired("gpt-audio-mini", "2027-01-20", "gpt-audio-1.5"),
    retired("gpt-audio-mini-2025-12-15", "2027-01-20", "gpt-audio-1.5"),
    // Input transcription models.
    retired("whisper-1", "2027-02-26", "gpt-live-transcribe"),
    retired("gpt-4o-transcribe", "2027-02-26", "gpt-live-transcribe"),
    retired(
        "gpt-4o-mini-transcribe",
        "2027-02-26",
        "gpt-live-transcribe",
    ),
    retired(
        "gpt-4o-mini-transcribe-2025-12-15",
        "2027-02-26",
        "gpt-live-transcribe",
    ),
    retired("gpt-4o-transcribe-diarize", "2027-02-26", "gpt-transcribe"),
    // Chat models (the analysis).
    retired("gpt-4o", "2027-01-14", "gpt-6-luna"),
    retired("gpt-4o-2024-11-20", "2027-01-14", "gpt-6-luna"),
    retired("gpt-4o-2024-08-06", "2027-01-14", "gpt-6-luna"),
    retired("gpt-4o-mini", "2027-01-14", "gpt-6-luna"),
    retired("gpt-4o-mini-2024-07-18", "2027-01-14", "gpt-6-luna"),
    retired("gpt-4.1", "2027-01-14", "gpt-6-luna"),
    retired("gpt-4.1-2025-04-14", "2027-01-14", "gpt-6-luna"),
    retired("gpt-4.1-mini", "2027-01-14", "gpt-6-luna"),
    retired("gpt-4.1-mini-2025-04-14", "2027-01-14", "gpt-6-luna"),
    retired("gpt-5", "2026-12-11", "gpt-6.1-sol"),
    retired("gpt-5-2025-08-07", "2026-12-11", "gpt-6.1-sol"),
    retired("gpt-5-mini", "2026-12-11", "gpt-6.1-terra"),
    retired("gpt-5-mini-2025-08-07", "2026-12-11", "gpt-6.1-terra"),
    retired("gpt-5-nano", "2026-12-11", "gpt-6-luna"),
    retired("gpt-5-nano-2025-08-07", "2026-12-11", "gpt-6-luna"),
    retired("o3", "2026-12-11", "gpt-6.1-sol"),
    retired("o3-2025-04-16", "2026-12-11", "gpt-6.1-sol"),
    retired("gpt-5.1", "2027-04-01", "gpt-5.5"),
    retired("gpt-5.1-2025-11-13", "2027-04-01", "gpt-5.5"),
    retired("gpt-5.4-nano", "2027-04-01", "gpt-6-luna"),
    retired("gpt-5.4-nano-2026-03-17", "2027-04-01", "gpt-6-luna"),
    retired("gpt-4.1-nano", "2026-10-23", "gpt-6-luna"),
    retired("o4-mini", "2026-10-23", "gpt-6-luna"),
    retired("o3-mini", "2026-10-23", "gpt-6-luna"),
    retired("o1", "2026-10-23", "gpt-6.1-sol"),
    retired("gpt-4-turbo", "2026-10-23", "gpt-6-luna"),
    retired("gpt-4", "2026-10-23", "gpt-6-luna"),
    retired("gpt-3.5-turbo", "2026-10-23", "gpt-6-luna"),
];

/// The announced shutdown of `model`, if any.
pub fn retirement(model: &str) -> Option<&'static Retirement> {
    RETIREMENTS.iter().find(|r| r.model == model.trim())
}

/// What scribe is configured to use a model for, and which.
fn configured(settings: &Settings) -> Vec<(&'static str, String)> {
    let mut models = vec![
        (
            "the calls' voice model (SCRIBE_REALTIME_MODEL)",
            settings.model().to_owned(),
        ),
        (
            "the transcription model (SCRIBE_TRANSCRIPTION_MODEL)",
            settings.call.transcription_model.clone(),
        ),
        (
            "the analysis model (SCRIBE_ANALYSIS_MODEL)",
            settings.analysis_model.clone(),
        ),
    ];
    // An owned Realtime session's model is the one its URL names.
    if let Ok(url) = reqwest::Url::parse(&settings.realtime_url)
        && let Some((_, model)) = url.query_pairs().find(|(k, _)| k == "model")
    {
        models.push((
            "the realtime URL's model (SCRIBE_REALTIME_URL)",
            model.into_owned(),
        ));
    }
    models
}

/// One warning for each configured model OpenAI announced a shutdown for,
/// as of `today`: the date and a current replacement.
pub fn retirement_warnings(settings: &Settings, today: NaiveDate) -> Vec<String> {
    configured(settings)
        .into_iter()
        .filter_map(|(purpose, model)| {
            let retirement = retirement(&model)?;
            let when = NaiveDate::parse_from_str(retirement.shutdown, "%Y-%m-%d").ok()?;
            let what = if when <= today {
                "OpenAI shut it down on"
            } else {
                "OpenAI announced its shutdown for"
            };
            Some(format!(
                "{purpose} is `{model}`: {what} {}; use a current model such as `{}`",
                retirement.shutdown, retirement.replacement
            ))
        })
        .collect()
}

/// Logs [`retirement_warnings`] for today, at startup.
pub fn warn_of_retirements(settings: &Settings) {
    for warning in retirement_warnings(settings, chrono::Utc::now().date_naive()) {
        tracing::warn!("{warning}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        DEFAULT_ANALYSIS_MODEL, DEFAULT_REALTIME_MODEL, DEFAULT_TRANSCRIPTION_MODEL,
    };
    use scribe_actors::domain::VoiceApi;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a date")
    }

    #[test]
    fn no_default_model_has_an_announced_shutdown() {
        for model in [
            DEFAULT_REALTIME_MODEL,
            DEFAULT_TRANSCRIPTION_MODEL,
            DEFAULT_ANALYSIS_MODEL,
            VoiceApi::Realtime.default_model(),
            VoiceApi::Live.default_model(),
        ] {
            assert_eq!(retirement(model), None, "{model}");
        }
        let settings = Settings::for_database("sqlite::memory:", &"t".repeat(32));
        assert_eq!(
            retirement_warnings(&settings, day("2026-12-03")),
            Vec::<String>::new()
        );
        for live in [VoiceApi::Live, VoiceApi::Realtime] {
            let settings = Settings {
                voice_api: live,
                ..Settings::for_database("sqlite::memory:", &"t".repeat(32))
            };
            assert!(retirement_warnings(&settings, day("2027-06-01")).is_empty());
        }
    }

    #[test]
    fn every_replacement_is_current_and_every_date_is_a_date() {
        for r in RETIREMENTS {
            assert!(day(r.shutdown) > day("2024-01-01"), "{r:?}");
            assert_eq!(retirement(r.replacement), None, "{r:?}");
        }
    }

    #[test]
    fn a_configured_model_with_a_shutdown_is_a_warning_with_its_date_and_a_replacement() {
        let mut settings = Settings::for_database("sqlite::memory:", &"t".repeat(32));
        settings.analysis_model = "gpt-4o".into();
        settings.realtime_model = Some("gpt-realtime".into());
        settings.call.transcription_model = "whisper-1".into();
        settings.realtime_url = "wss://api.openai.com/v1/realtime?model=gpt-realtime-mini".into();
        let warnings = retirement_warnings(&settings, day("2026-12-03"));
        assert_eq!(
            warnings,
            [
                "the calls' voice model (SCRIBE_REALTIME_MODEL) is `gpt-realtime`: OpenAI announced its shutdown for 2027-01-20; use a current model such as `gpt-realtime-2.1`",
                "the transcription model (SCRIBE_TRANSCRIPTION_MODEL) is `whisper-1`: OpenAI announced its shutdown for 2027-02-26; use a current model such as `gpt-live-transcribe`",
                "the analysis model (SCRIBE_ANALYSIS_MODEL) is `gpt-4o`: OpenAI announced its shutdown for 2027-01-14; use a current model such as `gpt-6-luna`",
                "the realtime URL's model (SCRIBE_REALTIME_URL) is `gpt-realtime-mini`: OpenAI announced its shutdown for 2027-01-20; use a current model such as `gpt-realtime-2.1-mini`",
            ]
        );
        let later = retirement_warnings(&settings, day("2027-01-20"));
        assert!(
            later[0].contains("OpenAI shut it down on 2027-01-20"),
            "{later:?}"
        );
    }
}
