//! `discover:` entries: raw → [`Discover`], every problem collected.

use serde_saphyr::Spanned;

use super::values::parse_cron;
use super::{DatasetContext, known_warehouse};
use crate::config::raw::RawDiscover;
use crate::discover::{Discover, Monitors};
use crate::domain::{Identifier, Ratio};
use crate::source::values::parse_duration;
use crate::source::{Diagnostic, Problems};

/// Tier of discovered datasets unless the entry says otherwise: the digest.
pub const DEFAULT_TIER: u8 = 3;

/// Validates one `discover:` entry; all of its problems, or the entry.
pub fn discover(
    raw: &Spanned<RawDiscover>,
    cx: &DatasetContext<'_>,
) -> Result<Discover, Vec<Diagnostic>> {
    let mut p = Problems::new(cx.src);
    let pos = cx.src.pos_of(raw);
    let r = &raw.value;

    let warehouse = p
        .required(&r.warehouse, "warehouse", &pos)
        .and_then(|w| p.parse(w, "warehouse", |s| known_warehouse(s, cx.warehouses)));
    let schema = p
        .required(&r.schema, "schema", &pos)
        .and_then(|s| p.parse(s, "schema", |s| Identifier::parse(s.trim())));
    let include = match &r.include {
        None => Some(vec![glob::Pattern::new("*").expect("a valid glob")]),
        Some(list) => globs(list, "include", &mut p),
    };
    let exclude = match &r.exclude {
        None => Some(Vec::new()),
        Some(list) => globs(list, "exclude", &mut p),
    };
    let tier = p.parse_or(&r.tier, "tier", DEFAULT_TIER, |&t| match t {
        1..=3 => Ok(t as u8),
        _ => Err(format!(
            "{t} is not a tier; expected 1 (page), 2 (chat) or 3 (digest)"
        )),
    });
    let owner = r
        .owner
        .as_ref()
        .map(|o| o.value.trim().to_owned())
        .filter(|o| !o.is_empty());
    let schedule = match &r.schedule {
        None => Some(None),
        Some(s) => p.parse(s, "schedule", |s| parse_cron(s)).map(Some),
    };
    let monitors = match &r.monitors {
        None => Some(Monitors::ALL),
        Some(list) => monitors(list, &mut p),
    };
    let max_lag = match &r.freshness {
        None => Some(None),
        Some(f) => match &f.value.max_lag {
            None => Some(None),
            Some(lag) => p
                .parse(lag, "freshness.max_lag", |s| parse_duration(s.trim()))
                .map(Some),
        },
    };
    let max_drop = match r.volume.as_ref().and_then(|v| v.value.max_drop.as_ref()) {
        None => Some(crate::discover::DEFAULT_MAX_DROP),
        Some(d) => p.parse(d, "volume.max_drop", |s| {
            Ratio::parse(s.trim(), true)
                .map(Ratio::get)
                .map_err(|e| e.to_string())
        }),
    };
    let forget_after = match &r.forget_after {
        None => Some(crate::discover::DEFAULT_FORGET_AFTER),
        Some(f) => p.parse(f, "forget_after", |s| parse_duration(s.trim())),
    };

    if !p.is_empty() {
        return Err(p.list);
    }
    let (
        Some(warehouse),
        Some(schema),
        Some(include),
        Some(exclude),
        Some(tier),
        Some(schedule),
        Some(monitors),
        Some(max_lag),
        Some(max_drop),
        Some(forget_after),
    ) = (
        warehouse,
        schema,
        include,
        exclude,
        tier,
        schedule,
        monitors,
        max_lag,
        max_drop,
        forget_after,
    )
    else {
        return Err(p.list);
    };
    Ok(Discover {
        warehouse,
        schema,
        include,
        exclude,
        tier,
        owner,
        schedule,
        monitors,
        max_lag,
        max_drop,
        forget_after,
        pos,
    })
}

fn globs(
    list: &Spanned<Vec<Spanned<String>>>,
    key: &str,
    p: &mut Problems<'_>,
) -> Option<Vec<glob::Pattern>> {
    let mut out = Vec::new();
    let mut ok = true;
    for g in &list.value {
        match p.parse(g, key, |s| {
            glob::Pattern::new(s.trim())
                .map_err(|e| format!("`{s}` is not a valid glob: {}", e.msg))
        }) {
            Some(pattern) => out.push(pattern),
            None => ok = false,
        }
    }
    if ok && key == "include" && out.is_empty() {
        p.at(list, "`include`: an empty list includes no table; leave `include` out to include every table");
        return None;
    }
    ok.then_some(out)
}

fn monitors(list: &Spanned<Vec<Spanned<String>>>, p: &mut Problems<'_>) -> Option<Monitors> {
    let mut m = Monitors {
        freshness: false,
        volume: false,
        schema: false,
    };
    let mut ok = true;
    for item in &list.value {
        let slot = match item.value.trim() {
            "freshness" => &mut m.freshness,
            "volume" => &mut m.volume,
            "schema" => &mut m.schema,
            other => {
                let hint = crate::source::did_you_mean(other, ["freshness", "volume", "schema"]);
                let hint = if hint.is_empty() {
                    "; expected freshness, volume or schema".to_owned()
                } else {
                    hint
                };
                p.at(item, format!("`monitors`: unknown monitor `{other}`{hint}"));
                ok = false;
                continue;
            }
        };
        if *slot {
            p.at(
                item,
                format!("`monitors`: `{}` is listed twice", item.value.trim()),
            );
            ok = false;
        }
        *slot = true;
    }
    if ok && list.value.is_empty() {
        p.at(
            list,
            "`monitors`: an empty list watches nothing; leave `monitors` out for all three",
        );
        return None;
    }
    ok.then_some(m)
}
