//! `tollgate ask`: a deterministic parser that turns a short English sentence about a
//! deployment into a structured request. No network, no model: a fixed vocabulary of verbs
//! and slots, so the same sentence always means the same thing, and anything outside the
//! grammar is refused with examples instead of being guessed at.
//!
//! Grammar (case-insensitive keywords; names and versions keep their case):
//!
//! - deploy: `deploy|ship|release|promote PIPELINE [VERSION] to ENV [from BRANCH]`, the slots
//!   in any order after the pipeline; `version V`, `from branch B`, `on branch B` also work.
//! - validate: `validate|check [run N] [of] PIPELINE for ENV` (`for|to|in|on|against`).
//! - status: any sentence with `status` (or starting with what/how/where/show) naming a
//!   deployment id (`dp_…`, or the word after `deployment`).
//! - rollback: `rollback|roll back|revert [PIPELINE] in ENV` (`in|on|for|from|of`), or
//!   `roll PIPELINE back in ENV`; `roll back ENV` alone names just the environment.

use serde::Serialize;

/// What a sentence asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Intent {
    Deploy {
        pipeline: String,
        environment: String,
        version: Option<String>,
        branch: Option<String>,
    },
    Validate {
        pipeline: Option<String>,
        environment: String,
        run: Option<u64>,
    },
    Status {
        deployment: String,
    },
    Rollback {
        pipeline: Option<String>,
        environment: String,
    },
}

/// Sentences the parser understands, for help and error messages.
pub const EXAMPLES: &[&str] = &[
    "deploy payments-api 1.4.2 to staging",
    "deploy payments-api to production from main",
    "ship payments-api version 2.0.0 to test from release/2.0",
    "validate run 4711 of payments-api for production",
    "what is the status of deployment dp_0192…",
    "roll back payments-api in production",
    "revert production",
];

/// A sentence outside the grammar, with what was missing or not understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{reason}\n\nSentences tollgate understands, for example:\n{}",
    examples()
)]
pub struct NotUnderstood {
    pub reason: String,
}

fn examples() -> String {
    EXAMPLES
        .iter()
        .map(|e| format!("  tollgate ask \"{e}\""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn refuse<T>(reason: impl Into<String>) -> Result<T, NotUnderstood> {
    Err(NotUnderstood {
        reason: reason.into(),
    })
}

/// Words that carry no meaning wherever they stand.
const FILLER: &[&str] = &["please", "the", "now", "kindly", "tollgate", "a", "an"];
/// Openers before the verb ("can you", "i want to" …).
const OPENERS: &[&str] = &[
    "can", "could", "would", "will", "you", "i", "want", "wanna", "to", "like", "i'd", "id",
    "let's", "lets", "us", "me", "help", "go", "ahead", "and",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verb {
    Deploy,
    Validate,
    Status,
    Rollback,
}

fn verb_of(word: &str) -> Option<Verb> {
    match word {
        "deploy" | "ship" | "release" | "promote" => Some(Verb::Deploy),
        "validate" | "check" => Some(Verb::Validate),
        "status" => Some(Verb::Status),
        "rollback" | "revert" => Some(Verb::Rollback),
        _ => None,
    }
}

/// A token as written and lowered.
#[derive(Clone, Debug)]
struct Word {
    text: String,
    lower: String,
}

fn words(sentence: &str) -> Vec<Word> {
    sentence
        .split_whitespace()
        .map(|raw| {
            let text = raw
                .trim_matches(|c: char| matches!(c, '"' | '\'' | '`' | ',' | ';' | '!' | '?'))
                .trim_end_matches(['.', ':'])
                .to_owned();
            Word {
                lower: text.to_lowercase(),
                text,
            }
        })
        .filter(|w| !w.text.is_empty())
        .collect()
}

/// `1.4.2`, `v2`, `2.0.0-rc.1`, `20261124.3`: digits first (after an optional v), dots.
fn looks_like_version(word: &str) -> bool {
    let rest = word
        .strip_prefix('v')
        .or_else(|| word.strip_prefix('V'))
        .unwrap_or(word);
    let core = rest.split(['-', '+']).next().unwrap_or_default();
    !core.is_empty()
        && core.starts_with(|c: char| c.is_ascii_digit())
        && core.chars().all(|c| c.is_ascii_digit() || c == '.')
        && !core.ends_with('.')
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
}

fn looks_like_deployment_id(word: &str) -> bool {
    word.len() > 3
        && word[..3].eq_ignore_ascii_case("dp_")
        && word[3..].chars().all(|c| c.is_ascii_alphanumeric())
}

/// A pipeline, environment or branch name: no keyword, nothing odd.
fn plausible_name(word: &str) -> bool {
    !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// Parse a sentence. Deterministic: the same sentence always gives the same answer.
pub fn parse(sentence: &str) -> Result<Intent, NotUnderstood> {
    let all = words(sentence);
    if all.is_empty() {
        return refuse("ask something: the sentence is empty");
    }
    // Status questions open with a question word or mention status anywhere.
    let first = all[0].lower.as_str();
    let asks_status = all
        .iter()
        .any(|w| matches!(w.lower.as_str(), "status" | "progress"))
        || matches!(
            first,
            "what" | "what's" | "whats" | "how" | "how's" | "where" | "show"
        );
    if asks_status {
        return status(&all);
    }
    // Skip openers up to the verb. "roll back" is two words; "roll X back" too.
    let mut position = 0;
    while position < all.len() {
        let word = all[position].lower.as_str();
        if verb_of(word).is_some() || word == "roll" {
            break;
        }
        if FILLER.contains(&word) || OPENERS.contains(&word) {
            position += 1;
            continue;
        }
        return refuse(format!(
            "I do not know the verb {:?}: start with deploy, ship, release, promote, validate, check, status, roll back or revert",
            all[position].text
        ));
    }
    let Some(verb_word) = all.get(position) else {
        return refuse("no verb: say deploy, validate, status or roll back");
    };
    let mut rest: Vec<Word> = all[position + 1..].to_vec();
    let verb = if verb_word.lower == "roll" {
        // "roll back X" or "roll X back": take the first "back" out.
        match rest.iter().position(|w| w.lower == "back") {
            Some(back) => {
                rest.remove(back);
                Verb::Rollback
            }
            None => return refuse("\"roll\" what? say \"roll back PIPELINE in ENVIRONMENT\""),
        }
    } else {
        verb_of(&verb_word.lower).unwrap_or(Verb::Deploy)
    };
    rest.retain(|w| !FILLER.contains(&w.lower.as_str()));
    match verb {
        Verb::Deploy => deploy(&rest),
        Verb::Validate => validate(&rest),
        Verb::Rollback => rollback(&rest),
        Verb::Status => status(&all),
    }
}

/// Slots read after the verb; what is left over (contiguous) is the pipeline's name.
#[derive(Default)]
struct Slots {
    pipeline: Vec<String>,
    /// The pipeline's words have ended (another slot followed them).
    pipeline_closed: bool,
    environment: Option<String>,
    branch: Option<String>,
    version: Option<String>,
    run: Option<u64>,
}

impl Slots {
    fn add_pipeline_word(&mut self, word: &Word) -> Result<(), NotUnderstood> {
        if self.pipeline_closed {
            return refuse(format!(
                "I did not understand {:?}: name the pipeline once, before the environment",
                word.text
            ));
        }
        if !plausible_name(&word.text) {
            return refuse(format!("{:?} is not a pipeline name", word.text));
        }
        self.pipeline.push(word.text.clone());
        Ok(())
    }

    fn close_pipeline(&mut self) {
        if !self.pipeline.is_empty() {
            self.pipeline_closed = true;
        }
    }

    fn set_once(slot: &mut Option<String>, what: &str, value: &Word) -> Result<(), NotUnderstood> {
        if !plausible_name(&value.text) {
            return refuse(format!("{:?} is not a {what} name", value.text));
        }
        if let Some(existing) = slot {
            return refuse(format!(
                "two {what}s ({existing:?} and {:?}): one at a time",
                value.text
            ));
        }
        *slot = Some(value.text.clone());
        Ok(())
    }

    fn pipeline(&self) -> Option<String> {
        (!self.pipeline.is_empty()).then(|| self.pipeline.join(" "))
    }
}

/// The word after position `i`, skipping nothing (fillers are gone already).
fn next<'a>(
    words: &'a [Word],
    i: usize,
    what: &str,
    after: &str,
) -> Result<&'a Word, NotUnderstood> {
    words.get(i + 1).ok_or_else(|| NotUnderstood {
        reason: format!("{after:?} needs {what} after it"),
    })
}

fn skip_suffix(words: &[Word], i: usize, suffixes: &[&str]) -> usize {
    match words.get(i + 1) {
        Some(word) if suffixes.contains(&word.lower.as_str()) => i + 2,
        _ => i + 1,
    }
}

const ENVIRONMENT_SUFFIX: &[&str] = &["environment", "env", "stage"];
const PIPELINE_WORDS: &[&str] = &["pipeline", "app", "service"];

fn deploy(words: &[Word]) -> Result<Intent, NotUnderstood> {
    let mut slots = Slots::default();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        match word.lower.as_str() {
            "to" | "into" | "in" | "on" | "onto" | "at" => {
                let target = next(words, i, "an environment", &word.text)?;
                if matches!(target.lower.as_str(), "branch") {
                    let branch = next(words, i + 1, "a branch", "branch")?;
                    Slots::set_once(&mut slots.branch, "branch", branch)?;
                    i += 3;
                } else {
                    Slots::set_once(&mut slots.environment, "environment", target)?;
                    i = skip_suffix(words, i + 1, ENVIRONMENT_SUFFIX);
                }
                slots.close_pipeline();
            }
            "from" | "off" | "using" => {
                let mut branch = next(words, i, "a branch", &word.text)?;
                let mut used = 2;
                if branch.lower == "branch" {
                    branch = next(words, i + 1, "a branch", "branch")?;
                    used = 3;
                }
                Slots::set_once(&mut slots.branch, "branch", branch)?;
                i += used;
                slots.close_pipeline();
            }
            "version" => {
                let version = next(words, i, "a version", "version")?;
                Slots::set_once(&mut slots.version, "version", version)?;
                i += 2;
                slots.close_pipeline();
            }
            "of" if slots.pipeline.is_empty() => i += 1,
            lower if PIPELINE_WORDS.contains(&lower) && !slots.pipeline.is_empty() => {
                i += 1;
                slots.close_pipeline();
            }
            // A version follows the pipeline ("payments-api 1.4.2"), or precedes it with
            // "of" ("1.4.2 of payments-api").
            _ if looks_like_version(&word.text)
                && (!slots.pipeline.is_empty()
                    || words.get(i + 1).is_some_and(|w| w.lower == "of")) =>
            {
                Slots::set_once(&mut slots.version, "version", word)?;
                i += 1;
                slots.close_pipeline();
            }
            _ => {
                slots.add_pipeline_word(word)?;
                i += 1;
            }
        }
    }
    let Some(pipeline) = slots.pipeline() else {
        return refuse("deploy which pipeline? e.g. \"deploy payments-api to staging\"");
    };
    let Some(environment) = slots.environment else {
        return refuse(format!(
            "deploy {pipeline} to which environment? e.g. \"deploy {pipeline} to staging\""
        ));
    };
    Ok(Intent::Deploy {
        pipeline,
        environment,
        version: slots.version,
        branch: slots.branch,
    })
}

fn run_number(word: &Word) -> Result<u64, NotUnderstood> {
    word.text
        .trim_start_matches('#')
        .parse()
        .map_err(|_| NotUnderstood {
            reason: format!("run {:?}: a run is a number, like 4711", word.text),
        })
}

fn validate(words: &[Word]) -> Result<Intent, NotUnderstood> {
    let mut slots = Slots::default();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        match word.lower.as_str() {
            "run" | "build" => {
                let number = next(words, i, "a run number", &word.text)?;
                if slots.run.replace(run_number(number)?).is_some() {
                    return refuse("two runs: validate one at a time");
                }
                i += 2;
                slots.close_pipeline();
            }
            lower if lower.starts_with('#') => {
                if slots.run.replace(run_number(word)?).is_some() {
                    return refuse("two runs: validate one at a time");
                }
                i += 1;
                slots.close_pipeline();
            }
            "for" | "to" | "in" | "on" | "against" | "into" => {
                let target = next(words, i, "an environment", &word.text)?;
                Slots::set_once(&mut slots.environment, "environment", target)?;
                i = skip_suffix(words, i + 1, ENVIRONMENT_SUFFIX);
                slots.close_pipeline();
            }
            "of" | "from" if slots.pipeline.is_empty() => i += 1,
            "deployment" | "deploy" | "a" if slots.pipeline.is_empty() => i += 1,
            lower if PIPELINE_WORDS.contains(&lower) && !slots.pipeline.is_empty() => {
                i += 1;
                slots.close_pipeline();
            }
            _ => {
                slots.add_pipeline_word(word)?;
                i += 1;
            }
        }
    }
    let Some(environment) = slots.environment.take() else {
        return refuse(
            "validate for which environment? e.g. \"validate run 4711 of payments-api for production\"",
        );
    };
    if slots.pipeline.is_empty() && slots.run.is_none() {
        return refuse(
            "validate what? name the pipeline (and the run), e.g. \"validate run 4711 of payments-api for production\"",
        );
    }
    Ok(Intent::Validate {
        pipeline: slots.pipeline(),
        environment,
        run: slots.run,
    })
}

fn rollback(words: &[Word]) -> Result<Intent, NotUnderstood> {
    let mut slots = Slots::default();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        match word.lower.as_str() {
            "in" | "on" | "for" | "from" | "of" | "to" => {
                let target = next(words, i, "an environment", &word.text)?;
                Slots::set_once(&mut slots.environment, "environment", target)?;
                i = skip_suffix(words, i + 1, ENVIRONMENT_SUFFIX);
                slots.close_pipeline();
            }
            lower if PIPELINE_WORDS.contains(&lower) && !slots.pipeline.is_empty() => {
                i += 1;
                slots.close_pipeline();
            }
            lower
                if ENVIRONMENT_SUFFIX.contains(&lower)
                    && slots.pipeline.len() == 1
                    && slots.environment.is_none() =>
            {
                // "roll back production environment": the one name was the environment.
                slots.environment = slots.pipeline.pop();
                i += 1;
                slots.close_pipeline();
            }
            _ => {
                slots.add_pipeline_word(word)?;
                i += 1;
            }
        }
    }
    let environment = match slots.environment.take() {
        Some(environment) => environment,
        // "roll back production": one bare name and no preposition is the environment.
        None if slots.pipeline.len() == 1 => slots.pipeline.remove(0),
        None => {
            return refuse(
                "roll back which environment? e.g. \"roll back payments-api in production\"",
            );
        }
    };
    Ok(Intent::Rollback {
        pipeline: slots.pipeline(),
        environment,
    })
}

fn status(words: &[Word]) -> Result<Intent, NotUnderstood> {
    if let Some(id) = words.iter().find(|w| looks_like_deployment_id(&w.text)) {
        return Ok(Intent::Status {
            deployment: id.text.clone(),
        });
    }
    if let Some(after) = words
        .iter()
        .position(|w| w.lower == "deployment")
        .and_then(|i| words.get(i + 1))
        && !FILLER.contains(&after.lower.as_str())
        && plausible_name(&after.text)
    {
        return Ok(Intent::Status {
            deployment: after.text.clone(),
        });
    }
    refuse(
        "the status of which deployment? name its id, e.g. \"status of deployment dp_0192…\" (tollgate deploy prints it)",
    )
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "a test reports failure by panicking"
    )]

    use super::*;

    fn deploy(
        pipeline: &str,
        environment: &str,
        version: Option<&str>,
        branch: Option<&str>,
    ) -> Intent {
        Intent::Deploy {
            pipeline: pipeline.to_owned(),
            environment: environment.to_owned(),
            version: version.map(str::to_owned),
            branch: branch.map(str::to_owned),
        }
    }

    #[test]
    fn deploy_sentences() {
        let cases = [
            (
                "deploy payments-api 1.4.2 to staging",
                deploy("payments-api", "staging", Some("1.4.2"), None),
            ),
            (
                "Deploy Payments-API 1.4.2 to Staging.",
                deploy("Payments-API", "Staging", Some("1.4.2"), None),
            ),
            (
                "deploy payments-api to production from main",
                deploy("payments-api", "production", None, Some("main")),
            ),
            (
                "ship payments-api version 2.0.0 to test from release/2.0",
                deploy("payments-api", "test", Some("2.0.0"), Some("release/2.0")),
            ),
            (
                "release payments-api v2.1.0-rc.1 into the staging environment",
                deploy("payments-api", "staging", Some("v2.1.0-rc.1"), None),
            ),
            (
                "promote payments-api to production",
                deploy("payments-api", "production", None, None),
            ),
            (
                "please deploy the payments-api pipeline to dev",
                deploy("payments-api", "dev", None, None),
            ),
            (
                "can you deploy payments-api to dev from branch feature/x",
                deploy("payments-api", "dev", None, Some("feature/x")),
            ),
            (
                "deploy payments-api from main to staging",
                deploy("payments-api", "staging", None, Some("main")),
            ),
            (
                "deploy version 1.4.2 of payments-api to staging",
                deploy("payments-api", "staging", Some("1.4.2"), None),
            ),
            (
                "deploy 1.4.2 of payments-api to staging",
                deploy("payments-api", "staging", Some("1.4.2"), None),
            ),
            (
                "deploy payments-api to staging on branch hotfix",
                deploy("payments-api", "staging", None, Some("hotfix")),
            ),
            (
                "deploy \"payments-api\" to staging!",
                deploy("payments-api", "staging", None, None),
            ),
            (
                "deploy payments api to staging",
                deploy("payments api", "staging", None, None),
            ),
        ];
        for (sentence, expected) in cases {
            assert_eq!(parse(sentence), Ok(expected), "{sentence}");
        }
    }

    #[test]
    fn validate_sentences() {
        let cases = [
            (
                "validate run 4711 of payments-api for production",
                Some("payments-api"),
                "production",
                Some(4711),
            ),
            (
                "check payments-api for production",
                Some("payments-api"),
                "production",
                None,
            ),
            (
                "check run #12 of payments-api against staging",
                Some("payments-api"),
                "staging",
                Some(12),
            ),
            (
                "validate payments-api run 7 for prod",
                Some("payments-api"),
                "prod",
                Some(7),
            ),
            (
                "validate build 99 for production",
                None,
                "production",
                Some(99),
            ),
            (
                "validate a deployment of payments-api to production",
                Some("payments-api"),
                "production",
                None,
            ),
        ];
        for (sentence, pipeline, environment, run) in cases {
            assert_eq!(
                parse(sentence),
                Ok(Intent::Validate {
                    pipeline: pipeline.map(str::to_owned),
                    environment: environment.to_owned(),
                    run
                }),
                "{sentence}"
            );
        }
    }

    #[test]
    fn status_sentences() {
        for sentence in [
            "what is the status of deployment dp_0192abc",
            "What's the status of dp_0192abc?",
            "status dp_0192abc",
            "how is deployment dp_0192abc doing",
            "show deployment dp_0192abc",
            "status of deployment dp_0192abc please",
        ] {
            assert_eq!(
                parse(sentence),
                Ok(Intent::Status {
                    deployment: "dp_0192abc".to_owned()
                }),
                "{sentence}"
            );
        }
    }

    #[test]
    fn rollback_sentences() {
        let cases = [
            (
                "roll back payments-api in production",
                Some("payments-api"),
                "production",
            ),
            (
                "rollback payments-api on staging",
                Some("payments-api"),
                "staging",
            ),
            (
                "Revert payments-api in Production.",
                Some("payments-api"),
                "Production",
            ),
            (
                "roll payments-api back in production",
                Some("payments-api"),
                "production",
            ),
            ("roll back production", None, "production"),
            ("revert the production environment", None, "production"),
            (
                "please roll back the payments-api pipeline in production",
                Some("payments-api"),
                "production",
            ),
        ];
        for (sentence, pipeline, environment) in cases {
            assert_eq!(
                parse(sentence),
                Ok(Intent::Rollback {
                    pipeline: pipeline.map(str::to_owned),
                    environment: environment.to_owned()
                }),
                "{sentence}"
            );
        }
    }

    #[test]
    fn unknown_or_incomplete_phrasing_is_refused_with_examples() {
        for (sentence, says) in [
            ("", "empty"),
            ("   ", "empty"),
            ("hello there", "verb"),
            ("make me a sandwich", "verb"),
            ("deploy", "which pipeline"),
            ("deploy payments-api", "which environment"),
            ("deploy payments-api to", "needs an environment"),
            ("deploy payments-api to staging from", "needs a branch"),
            (
                "deploy payments-api to staging and production",
                "name the pipeline once",
            ),
            (
                "deploy payments-api to staging to production",
                "two environments",
            ),
            ("deploy payments-api 1.0 2.0 to staging", "two versions"),
            ("deploy pay$ments to staging", "not a pipeline name"),
            (
                "validate run abc of payments-api for production",
                "a run is a number",
            ),
            ("validate payments-api", "which environment"),
            ("validate for production", "validate what"),
            ("what is the status", "which deployment"),
            ("status", "which deployment"),
            ("rollback", "which environment"),
            ("roll payments-api to production", "\"roll\" what"),
            ("rollback payments-api ledger", "which environment"),
        ] {
            let error = parse(sentence).expect_err(sentence);
            assert!(
                error.reason.contains(says),
                "{sentence:?}: {}",
                error.reason
            );
            let message = error.to_string();
            assert!(
                message.contains("tollgate ask \"deploy payments-api 1.4.2 to staging\""),
                "{message}"
            );
        }
    }

    #[test]
    fn the_same_sentence_always_means_the_same() {
        let sentence = "ship payments-api version 2.0.0 to test from release/2.0";
        let first = parse(sentence);
        for _ in 0..10 {
            assert_eq!(parse(sentence), first);
        }
    }

    #[test]
    fn every_example_parses() {
        for example in EXAMPLES {
            let example = example.replace('…', "abc");
            assert!(parse(&example).is_ok(), "{example}");
        }
    }
}
