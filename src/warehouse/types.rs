//! Column types normalised across engines, so that an expected schema written
//! once (`type: bigint`) matches PostgreSQL, MySQL/MariaDB and SQLite alike.

/// Normalises a column type as an engine reports it (`int4`,
/// `character varying(20)`, `bigint(20) unsigned`, `DATETIME`) to one name
/// per family: `integer`, `bigint`, `smallint`, `boolean`, `numeric`,
/// `real`, `double`, `text`, `timestamp`, `timestamptz`, `date`, `json`.
/// Types outside those families come back lowercased and trimmed.
///
/// Normalising a normalised name returns it unchanged.
pub fn normalise(engine_type: &str) -> String {
    let lowered = engine_type
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    if matches!(lowered.as_str(), "tinyint(1)" | "bool" | "boolean") {
        return "boolean".to_owned();
    }
    let base = base_type(&lowered);
    let family = match base.as_str() {
        "int" | "int4" | "integer" | "mediumint" => "integer",
        "int8" | "bigint" => "bigint",
        "int2" | "smallint" => "smallint",
        "numeric" | "decimal" => "numeric",
        "float4" | "real" => "real",
        "float8" | "double" | "double precision" => "double",
        "varchar" | "character varying" | "text" | "char" | "character" | "bpchar" | "tinytext"
        | "mediumtext" | "longtext" => "text",
        "timestamp" | "timestamp without time zone" | "datetime" => "timestamp",
        "timestamptz" | "timestamp with time zone" => "timestamptz",
        "date" => "date",
        "json" | "jsonb" => "json",
        _ => return lowered,
    };
    family.to_owned()
}

/// The type without its parameters (`(20)`, `(12,2)`) and without MySQL's
/// sign and padding attributes: `bigint(20) unsigned` → `bigint`,
/// `timestamp(6) with time zone` → `timestamp with time zone`.
fn base_type(lowered: &str) -> String {
    let mut without_params = String::with_capacity(lowered.len());
    let mut depth = 0usize;
    for c in lowered.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => without_params.push(c),
            _ => {}
        }
    }
    without_params
        .split_whitespace()
        .filter(|word| !matches!(*word, "unsigned" | "signed" | "zerofill"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn engine_spellings_map_to_one_family() {
        let cases = [
            ("int4", "integer"),
            ("INTEGER", "integer"),
            ("int(11)", "integer"),
            ("int(10) unsigned", "integer"),
            ("mediumint(9)", "integer"),
            ("int8", "bigint"),
            ("bigint(20) unsigned", "bigint"),
            ("BIGINT", "bigint"),
            ("int2", "smallint"),
            ("smallint(6)", "smallint"),
            ("tinyint(1)", "boolean"),
            ("bool", "boolean"),
            ("BOOLEAN", "boolean"),
            ("numeric", "numeric"),
            ("decimal(12,2)", "numeric"),
            ("NUMERIC(12, 2)", "numeric"),
            ("float4", "real"),
            ("real", "real"),
            ("float8", "double"),
            ("double", "double"),
            ("double precision", "double"),
            ("varchar(20)", "text"),
            ("character varying", "text"),
            ("character varying(255)", "text"),
            ("text", "text"),
            ("char(3)", "text"),
            ("longtext", "text"),
            ("timestamp", "timestamp"),
            ("timestamp without time zone", "timestamp"),
            ("datetime", "timestamp"),
            ("datetime(6)", "timestamp"),
            ("timestamptz", "timestamptz"),
            ("timestamp with time zone", "timestamptz"),
            ("timestamp(3) with time zone", "timestamptz"),
            ("date", "date"),
            ("DATE", "date"),
            ("json", "json"),
            ("jsonb", "json"),
            ("  UUID ", "uuid"),
            ("tinyint(4)", "tinyint(4)"),
            ("", ""),
        ];
        for (raw, want) in cases {
            assert_eq!(normalise(raw), want, "normalise({raw:?})");
        }
    }

    #[test]
    fn normalising_is_idempotent() {
        for family in [
            "integer",
            "bigint",
            "smallint",
            "boolean",
            "numeric",
            "real",
            "double",
            "text",
            "timestamp",
            "timestamptz",
            "date",
            "json",
        ] {
            assert_eq!(normalise(family), family);
        }
    }
}
