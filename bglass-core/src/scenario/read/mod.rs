//! Reading a scenario file into a [`Scenario`], one module per section of the file: the
//! top-level keys here, then [`participants`], [`faults`] (`[[fault]]`) and [`expect`].
//! Every value is validated where it is read and every error points at it.

mod expect;
mod faults;
mod participants;

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::{
    MAX_DURATION_MS, MAX_FAULTS, MAX_PROXIES, MAX_TEXT_CHARS, SCENARIO_VERSION, Scenario,
    ScenarioError, ScenarioProblem, Spot,
};
use crate::duration::Millis;
use crate::id::{DependencyName, NameError, ProxyId, ScenarioName};
use crate::source::{Located, Position, Source};

/// The file as TOML gives it, before validation.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    version: Spanned<i64>,
    name: Spanned<String>,
    description: Spanned<String>,
    catalog: Option<Spanned<String>>,
    production: Option<Spanned<String>>,
    #[serde(default)]
    down: Vec<Spanned<String>>,
    duration: Spanned<String>,
    proxies: Option<Spanned<Vec<Spanned<String>>>>,
    participants: Spanned<participants::RawParticipants>,
    #[serde(default)]
    fault: Vec<Spanned<faults::RawFault>>,
    #[serde(default)]
    expect: Option<expect::RawExpect>,
}

/// The file being read: locates errors and validates the kinds of value every section has.
struct Ctx<'a> {
    source: &'a Source,
}

impl Ctx<'_> {
    /// An error at `span`.
    fn err(&self, span: Range<usize>, problem: ScenarioProblem) -> ScenarioError {
        Located::new(self.source.path(), self.source.locate(span), problem)
    }

    /// Where `span` is.
    fn at(&self, span: Range<usize>) -> Option<Position> {
        self.source.locate(span)
    }

    /// A drill duration.
    fn millis(&self, what: &'static str, v: &Spanned<String>) -> Result<Millis, ScenarioError> {
        v.get_ref()
            .parse::<Millis>()
            .map_err(|e| self.err(v.span(), ScenarioProblem::Duration { what, source: e }))
    }

    /// An optional drill duration.
    fn millis_opt(
        &self,
        what: &'static str,
        v: Option<&Spanned<String>>,
    ) -> Result<Option<Millis>, ScenarioError> {
        v.map(|v| self.millis(what, v)).transpose()
    }

    /// A validated name.
    fn name<T>(
        &self,
        v: &Spanned<String>,
        new: impl Fn(&str) -> Result<T, NameError>,
    ) -> Result<T, ScenarioError> {
        new(v.get_ref()).map_err(|e| self.err(v.span(), ScenarioProblem::Name(e)))
    }

    /// A list of distinct names, each with where it was written.
    fn names<T: PartialEq + ToString>(
        &self,
        what: &'static str,
        list: &[Spanned<String>],
        new: impl Fn(&str) -> Result<T, NameError>,
    ) -> Result<Vec<Spot<T>>, ScenarioError> {
        let mut out: Vec<Spot<T>> = Vec::with_capacity(list.len());
        for v in list {
            let value = self.name(v, &new)?;
            if out.iter().any(|x| x.value == value) {
                return Err(self.err(
                    v.span(),
                    ScenarioProblem::Duplicate {
                        what,
                        value: value.to_string(),
                    },
                ));
            }
            out.push(Spot {
                value,
                at: self.at(v.span()),
            });
        }
        Ok(out)
    }

    /// A text for people: 1-[`MAX_TEXT_CHARS`] characters, no control characters.
    fn text(&self, what: &'static str, v: &Spanned<String>) -> Result<String, ScenarioError> {
        let s = v.get_ref();
        let n = s.chars().count();
        if n > 0 && n <= MAX_TEXT_CHARS && !s.chars().any(char::is_control) {
            Ok(s.clone())
        } else {
            Err(self.err(v.span(), ScenarioProblem::Text { what }))
        }
    }

    /// A fraction from 0 to 1.
    fn rate(&self, what: &'static str, v: &Spanned<f64>) -> Result<f64, ScenarioError> {
        let r = *v.get_ref();
        if r.is_finite() && (0.0..=1.0).contains(&r) {
            Ok(r)
        } else {
            Err(self.err(
                v.span(),
                ScenarioProblem::Range {
                    what,
                    range: "a fraction from 0.0 to 1.0".to_owned(),
                },
            ))
        }
    }
}

/// Reads and validates a scenario file (not yet checked against a catalog).
pub(super) fn scenario(source: &Source) -> Result<Scenario, ScenarioError> {
    let headers = source.table_header_lines("fault");
    if headers.len() > MAX_FAULTS {
        return Err(Located::new(
            source.path(),
            headers
                .get(MAX_FAULTS)
                .map(|&line| Position { line, column: 1 }),
            ScenarioProblem::TooManyFaults(headers.len()),
        ));
    }
    let raw: RawScenario = source
        .parse_toml()
        .map_err(|e| e.map(ScenarioProblem::Source))?;
    let ctx = Ctx { source };
    if *raw.version.get_ref() != SCENARIO_VERSION {
        return Err(ctx.err(
            raw.version.span(),
            ScenarioProblem::Version(*raw.version.get_ref()),
        ));
    }
    let name = ctx.name(&raw.name, ScenarioName::new)?;
    let description = ctx.text("description", &raw.description)?;
    let dir = source.path().parent().unwrap_or(Path::new("."));
    let relative = |v: &Option<Spanned<String>>, what| -> Result<Option<PathBuf>, ScenarioError> {
        v.as_ref()
            .map(|v| ctx.text(what, v).map(|p| dir.join(p)))
            .transpose()
    };
    let catalog = relative(&raw.catalog, "catalog")?;
    let production = relative(&raw.production, "production")?;
    let down = ctx.names("dependency", &raw.down, DependencyName::new)?;
    if let (Some(first), None) = (raw.down.first(), &production) {
        return Err(ctx.err(first.span(), ScenarioProblem::NoProduction));
    }
    let duration = drill_duration(&ctx, &raw.duration)?;
    let proxies = proxies(&ctx, raw.proxies.as_ref())?;
    let participants = participants::read(&ctx, &raw.participants, duration)?;
    let faults = faults::read(&ctx, &raw.fault, &proxies, duration)?;
    let expect = expect::read(&ctx, raw.expect.as_ref())?;
    let digest = ring::digest::digest(&ring::digest::SHA256, source.text().as_bytes());
    Ok(Scenario {
        path: source.path().to_path_buf(),
        name,
        description,
        catalog,
        production,
        down,
        duration,
        proxies,
        participants,
        faults,
        expect,
        digest: crate::keys::hex_lower(digest.as_ref()),
    })
}

/// `duration`: 1 s to [`MAX_DURATION_MS`].
fn drill_duration(ctx: &Ctx<'_>, v: &Spanned<String>) -> Result<Millis, ScenarioError> {
    let duration = ctx.millis("duration", v)?;
    if duration.as_ms() < 1000 || duration.as_ms() > MAX_DURATION_MS {
        return Err(ctx.err(
            v.span(),
            ScenarioProblem::Range {
                what: "duration",
                range: "from 1s to 1h".to_owned(),
            },
        ));
    }
    Ok(duration)
}

/// `proxies`: 1 to [`MAX_PROXIES`] distinct proxy ids; `["primary"]` when left out.
fn proxies(
    ctx: &Ctx<'_>,
    raw: Option<&Spanned<Vec<Spanned<String>>>>,
) -> Result<Vec<ProxyId>, ScenarioError> {
    let Some(list) = raw else {
        return ProxyId::new("primary")
            .map(|p| vec![p])
            .map_err(|e| Located::new(ctx.source.path(), None, ScenarioProblem::Name(e)));
    };
    if list.get_ref().is_empty() || list.get_ref().len() > MAX_PROXIES {
        return Err(ctx.err(
            list.span(),
            ScenarioProblem::Range {
                what: "proxies",
                range: format!("a list of 1 to {MAX_PROXIES} names"),
            },
        ));
    }
    Ok(ctx
        .names("proxy", list.get_ref(), ProxyId::new)?
        .into_iter()
        .map(|s| s.value)
        .collect())
}
