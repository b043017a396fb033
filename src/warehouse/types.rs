//! Column types in one vocabulary across engines, so that a schema written
//! once (`bigint`, `text`, `timestamptz`) matches what PostgreSQL, MySQL and
//! SQLite catalogs report (`int8`, `varchar(255)`, `timestamp with time zone`).

use super::Engine;

/// The shared vocabulary, and the spellings standard SQL gives it; each
/// engine adds its own in [`Dialect::type_names`](super::Dialect::type_names).
const STANDARD: &[(&str, &str)] = &[
    ("smallint", "smallint"),
    ("integer", "integer"),
    ("int", "integer"),
    ("bigint", "bigint"),
    ("boolean", "boolean"),
    ("numeric", "numeric"),
    ("decimal", "numeric"),
    ("real", "real"),
    ("double", "double"),
    ("double precision", "double"),
    ("text", "text"),
    ("varchar", "text"),
    ("character varying", "text"),
    ("char", "text"),
    ("character", "text"),
    ("timestamp", "timestamp"),
    ("timestamp without time zone", "timestamp"),
    ("timestamptz", "timestamptz"),
    ("timestamp with time zone", "timestamptz"),
    ("date", "date"),
    ("time", "time"),
    ("time without time zone", "time"),
    ("json", "json"),
    ("binary", "binary"),
    ("varbinary", "binary"),
    ("blob", "binary"),
];

/// Maps an engine's spelling of a type to the shared vocabulary: `smallint`,
/// `integer`, `bigint`, `boolean`, `numeric`, `real`, `double`, `text`,
/// `timestamp`, `timestamptz`, `date`, `time`, `json`, `binary`. Anything else
/// comes back lowercased, trimmed and with single spaces. Every engine's
/// spellings are known, so a schema written for one engine reads the same on
/// another.
pub fn normalise(engine_type: &str) -> String {
    let dialects = || Engine::ALL.into_iter().map(Engine::dialect);
    if let Some(name) = dialects().find_map(|d| d.own_type(engine_type.trim())) {
        return name;
    }
    let t = engine_type
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let lookup = |spelling: &str| {
        STANDARD
            .iter()
            .chain(dialects().flat_map(|d| d.type_names()))
            .find(|(s, _)| *s == spelling)
            .map(|(_, name)| *name)
    };
    // A spelling whose arguments matter (MySQL's `tinyint(1)` is a boolean).
    if let Some(name) = lookup(&t) {
        return name.to_owned();
    }
    let (base, args) = match t.split_once('(') {
        Some((base, rest)) => {
            let (args, after) = rest.split_once(')').unwrap_or((rest, ""));
            // Keep what follows the parentheses: `timestamp(6) with time zone`.
            (
                format!("{}{}", base.trim_end(), after).trim().to_owned(),
                Some(args.trim().to_owned()),
            )
        }
        None => (t.clone(), None),
    };
    // Modifiers that do not change what the column holds for our purposes.
    let base = base
        .split(' ')
        .filter(|w| !dialects().any(|d| d.type_modifiers().contains(w)))
        .collect::<Vec<_>>()
        .join(" ");
    // float(1..24) is real, float(25..53) and bare float are double.
    if base == "float" {
        return match args.as_deref().and_then(|a| a.parse::<u32>().ok()) {
            Some(p) if p <= 24 => "real",
            _ => "double",
        }
        .to_owned();
    }
    match lookup(&base) {
        Some(name) => name.to_owned(),
        None => t,
    }
}

#[cfg(test)]
mod tests {
    use super::{Engine, STANDARD, normalise};

    #[test]
    fn every_engine_spelling_lands_in_the_vocabulary() {
        for engine in Engine::ALL {
            for (spelling, name) in engine.dialect().type_names() {
                assert!(
                    STANDARD.iter().any(|(_, n)| n == name),
                    "{engine:?}: {spelling:?} maps to {name:?}, outside the vocabulary"
                );
                // Two engines spelling a type alike must agree on it.
                assert_eq!(normalise(spelling), *name, "{engine:?}: {spelling:?}");
            }
        }
    }

    #[test]
    fn engines_agree_on_common_types() {
        let cases: &[(&[&str], &str)] = &[
            (
                &[
                    "int4",
                    "integer",
                    "INT",
                    "int(11)",
                    "mediumint",
                    "INTEGER",
                    "int unsigned",
                    "serial",
                ],
                "integer",
            ),
            (
                &[
                    "int8",
                    "bigint",
                    "BIGINT(20)",
                    "bigserial",
                    "bigint unsigned",
                ],
                "bigint",
            ),
            (&["int2", "smallint", "tinyint", "tinyint(4)"], "smallint"),
            (&["tinyint(1)", "bool", "boolean", "BOOLEAN"], "boolean"),
            (
                &["numeric", "decimal(10,2)", "NUMERIC(12, 4)", "decimal"],
                "numeric",
            ),
            (&["float4", "real", "float(24)"], "real"),
            (
                &[
                    "float8",
                    "double",
                    "double precision",
                    "DOUBLE PRECISION",
                    "float",
                    "float(53)",
                ],
                "double",
            ),
            (
                &[
                    "varchar(255)",
                    "character varying",
                    "character varying(64)",
                    "text",
                    "char",
                    "char(3)",
                    "bpchar",
                    "string",
                    "longtext",
                    "TEXT",
                    "nvarchar(10)",
                ],
                "text",
            ),
            (
                &[
                    "timestamp",
                    "timestamp without time zone",
                    "datetime",
                    "DATETIME(6)",
                    "timestamp(3) without time zone",
                ],
                "timestamp",
            ),
            (
                &[
                    "timestamptz",
                    "timestamp with time zone",
                    "timestamp(6) with time zone",
                    "TIMESTAMPTZ",
                ],
                "timestamptz",
            ),
            (&["date", "DATE"], "date"),
            (&["json", "jsonb", "JSON"], "json"),
            (&["bytea", "blob", "varbinary(16)"], "binary"),
        ];
        for (spellings, expected) in cases {
            for s in *spellings {
                assert_eq!(normalise(s), *expected, "{s:?}");
            }
        }
    }

    #[test]
    fn unknown_types_are_lowercased_and_trimmed() {
        assert_eq!(normalise("  UUID "), "uuid");
        assert_eq!(
            normalise("Geography( Point , 4326 )"),
            "geography( point , 4326 )"
        );
        assert_eq!(normalise("INTERVAL   DAY"), "interval day");
        assert_eq!(normalise("integer[]"), "integer[]");
    }
}
