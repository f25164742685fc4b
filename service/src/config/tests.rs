use super::*;
use clap::{CommandFactory, Parser};
use secrecy::ExposeSecret;

#[test]
fn cli_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn no_subcommand_means_serve_with_defaults() {
    let cli = Cli::try_parse_from(["scribe"]).expect("parses");
    let Command::Serve(args) = cli.into_command() else {
        panic!("expected serve");
    };
    assert_eq!(args.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(args.analysis_model, "gpt-6-luna");
    assert_eq!(args.transcription_model, "gpt-live-transcribe");
}

#[test]
fn flags_work_with_and_without_the_subcommand() {
    for argv in [
        vec!["scribe", "--listen", "0.0.0.0:9000", "--simulate"],
        vec!["scribe", "serve", "--listen", "0.0.0.0:9000", "--simulate"],
    ] {
        let Command::Serve(args) = Cli::try_parse_from(argv).expect("parses").into_command() else {
            panic!("expected serve");
        };
        assert_eq!(args.listen.port(), 9000);
        assert!(args.simulate);
    }
    let cli = Cli::try_parse_from(["scribe", "migrate", "--database-url", "sqlite://x.db"])
        .expect("parses");
    assert!(matches!(cli.into_command(), Command::Migrate(_)));
}

#[test]
fn debug_output_never_shows_secrets() {
    let cli = Cli::try_parse_from([
        "scribe",
        "--openai-api-key",
        "sk-marker-openai",
        "--stream-api-secret",
        "marker-stream-secret",
        "--api-token",
        "marker-api-token-0123456789abcdef0123",
        "--admin-token",
        "marker-admin-token-0123456789abcdef012",
        "--page-secret",
        "marker-page-secret-0123456789abcdef012",
        "--openai-webhook-secret",
        "whsec_marker-webhook",
        "--database-url",
        "postgres://u:marker-db-password@h/db",
    ])
    .expect("parses");
    let (settings, source) = Settings::from_args(cli.serve).expect("strong secrets");
    assert_eq!(source, TokenSource::Configured);
    let debug = format!("{settings:?}");
    assert!(
        !debug.contains("marker"),
        "secret leaked into Debug: {debug}"
    );
}

#[test]
fn generates_a_distinct_token_when_none_is_set() {
    let cli = Cli::try_parse_from(["scribe", "--api-token", ""]).expect("parses");
    let (settings, source) = Settings::from_args(cli.serve).expect("no secret set");
    assert_eq!(source, TokenSource::Generated);
    assert_eq!(settings.api_token.expose_secret().len(), 64);
    assert_ne!(
        generate_token().expose_secret(),
        settings.api_token.expose_secret()
    );
}

#[test]
fn short_tokens_and_page_secrets_are_refused_with_their_name() {
    let strong = "0123456789abcdef0123456789abcdef";
    for (flag, name) in [
        ("--api-token", "SCRIBE_API_TOKEN"),
        ("--admin-token", "SCRIBE_ADMIN_TOKEN"),
        ("--page-secret", "SCRIBE_PAGE_SECRET"),
    ] {
        let settings = |value: &str| {
            let mut argv = vec!["scribe", flag, value];
            if flag != "--api-token" {
                argv.extend(["--api-token", strong]);
            }
            Settings::from_args(Cli::try_parse_from(argv).expect("parses").serve)
        };
        let error = settings("dev-token").expect_err("a 9-character secret");
        assert_eq!(
            error,
            SettingsError::WeakSecret(WeakSecret { name, len: 9 })
        );
        assert!(error.to_string().contains("at least 32"), "{error}");
        assert_eq!(
            settings(&strong[1..]).expect_err("31 characters"),
            SettingsError::WeakSecret(WeakSecret { name, len: 31 })
        );
        assert!(settings(strong).is_ok(), "32 characters pass");
    }
}

#[test]
fn a_secret_with_a_trailing_newline_is_trimmed_everywhere() {
    let strong = "0123456789abcdef0123456789abcdef";
    let argv = [
        "scribe",
        "--api-token",
        "0123456789abcdef0123456789abcdef\n",
        "--admin-token",
        " 0123456789abcdef0123456789abcdef\t",
        "--page-secret",
        "0123456789abcdef0123456789abcdef\r\n",
        "--stream-api-secret",
        "stream-secret\n",
    ];
    let (settings, _) =
        Settings::from_args(Cli::try_parse_from(argv).expect("parses").serve).expect("strong");
    assert_eq!(settings.api_token.expose_secret(), strong);
    assert_eq!(
        settings.admin_token.as_ref().map(|t| t.expose_secret()),
        Some(strong)
    );
    assert_eq!(
        settings.page_secret.as_ref().map(|t| t.expose_secret()),
        Some(strong)
    );
    assert_eq!(
        settings
            .stream_api_secret
            .as_ref()
            .map(|t| t.expose_secret()),
        Some("stream-secret")
    );
    // Padding does not make a short secret long enough.
    let padded = format!("dev-token{}", " ".repeat(40));
    let error = Settings::from_args(
        Cli::try_parse_from(["scribe", "--api-token", &padded])
            .expect("parses")
            .serve,
    )
    .expect_err("9 characters");
    assert_eq!(
        error,
        SettingsError::WeakSecret(WeakSecret {
            name: "SCRIBE_API_TOKEN",
            len: 9
        })
    );
}

#[test]
fn the_lease_and_its_renewal_are_settings_and_a_renewal_slower_than_a_third_is_refused() {
    let strong = "0123456789abcdef0123456789abcdef";
    let settings = |extra: &[&str]| {
        let mut argv = vec!["scribe", "--api-token", strong];
        argv.extend(extra);
        Settings::from_args(Cli::try_parse_from(argv).expect("parses").serve).map(|(s, _)| s)
    };
    let defaults = settings(&[]).expect("the defaults");
    assert_eq!(defaults.lease.ttl, std::time::Duration::from_secs(30));
    assert_eq!(
        defaults.lease.renew_every,
        std::time::Duration::from_secs(10)
    );
    let short = settings(&["--lease-ms", "6000", "--lease-renew-ms", "2000"]).expect("a third");
    assert_eq!(short.lease.ttl, std::time::Duration::from_secs(6));
    assert_eq!(short.lease.renew_every, std::time::Duration::from_secs(2));
    for (lease, renew) in [("6000", "2001"), ("6000", "0"), ("0", "0")] {
        let error =
            settings(&["--lease-ms", lease, "--lease-renew-ms", renew]).expect_err("refused");
        assert!(
            matches!(error, SettingsError::LeaseTiming { .. }),
            "{lease}/{renew}: {error}"
        );
        assert!(
            error.to_string().contains("SCRIBE_LEASE_RENEW_MS"),
            "{error}"
        );
    }
}
