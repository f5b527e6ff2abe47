//! The compatibility table: which column pairs are fine, accepted with a
//! warning, or problems, and what the messages name.

use super::*;

fn my_t(my: &str) -> MyType {
    if ["char", "varchar", "text", "tinytext", "mediumtext", "longtext", "enum", "set"].contains(&my_base(my).as_str()) {
        MyType::text(my, "utf8mb4")
    } else {
        MyType::plain(my)
    }
}

fn verdict(pg: &str, my: &str) -> Verdict {
    judge(&PgType::base(pg), &my_t(my), Flows::BOTH)
}

fn ok(pg: &str, my: &str) {
    assert_eq!(verdict(pg, my), Verdict::Ok, "{pg} ↔ {my}");
}

fn warn(pg: &str, my: &str, needle: &str) {
    match verdict(pg, my) {
        Verdict::Warn(w) => assert!(w.contains(needle), "{pg} ↔ {my}: {w:?} should mention {needle:?}"),
        v => panic!("{pg} ↔ {my} should be a warning, is {v:?}"),
    }
}

fn bad(pg: &str, my: &str, needle: &str) {
    match verdict(pg, my) {
        Verdict::Problem(e) => assert!(e.contains(needle), "{pg} ↔ {my}: {e:?} should mention {needle:?}"),
        v => panic!("{pg} ↔ {my} should be rejected, is {v:?}"),
    }
}

#[test]
fn pairs_that_hold_every_value_both_ways_are_fine() {
    for (pg, my) in [
        ("smallint", "smallint(6)"),
        ("integer", "int(11)"),
        ("bigint", "bigint(20)"),
        ("numeric(12,2)", "decimal(12,2)"),
        ("numeric(20,0)", "decimal(20,0)"),
        ("real", "float"),
        ("double precision", "double"),
        ("boolean", "tinyint(1)"),
        ("text", "longtext"),
        ("character varying(64)", "varchar(64)"),
        ("character(3)", "char(3)"),
        ("bytea", "longblob"),
        ("date", "date"),
        ("timestamp without time zone", "datetime(6)"),
        ("timestamp(3) without time zone", "datetime(3)"),
        ("timestamp(0) with time zone", "datetime"),
        ("json", "json"),
        ("jsonb", "json"),
        ("uuid", "char(36)"),
    ] {
        ok(pg, my);
    }
}

#[test]
fn widenings_one_way_are_accepted_with_a_warning_for_the_other() {
    // MySQL → Postgres widens; Postgres values outside the MySQL range are quarantined.
    warn("smallint", "tinyint(4)", "MySQL refuses Postgres values outside -128 to 127");
    warn("smallint", "tinyint(3) unsigned", "values outside 0 to 255");
    warn("integer", "smallint(5) unsigned", "values outside 0 to 65535: such changes are quarantined; every MySQL value fits Postgres; to replicate them all, use INT in MySQL");
    warn("integer", "mediumint(9)", "INT in MySQL");
    warn("bigint", "int(10) unsigned", "use BIGINT in MySQL");
    warn("integer", "tinyint(1)", "outside -128 to 127");
    warn("smallint", "year(4)", "numbers other than 0 and 1901 to 2155");
    warn("integer", "year", "YEAR");
    warn("numeric(20,0)", "bigint(20) unsigned", "DECIMAL(20,0)");
    warn("numeric(10,0)", "int(11)", "MySQL refuses Postgres values outside -2147483648 to 2147483647");
    warn("bigint", "decimal(12,0)", "MySQL refuses Postgres values outside numbers of up to 12 digits");
    // Postgres → MySQL widens; MySQL values that do not fit Postgres are quarantined.
    warn("smallint", "int(11)", "Postgres refuses MySQL values outside -32768 to 32767: such changes are quarantined");
    warn("integer", "bigint(20)", "use bigint in Postgres");
    warn("numeric(10,2)", "decimal(12,2)", "Postgres refuses MySQL values outside numbers of up to 8 digits before the point and 2 after");
    warn("numeric(14,2)", "decimal(12,2)", "MySQL refuses Postgres values outside numbers of up to 10 digits");
    warn("text", "varchar(255)", "values longer than 255 characters");
    warn("text", "text", "65535 bytes in UTF-8");
    warn("character varying(10)", "varchar(20)", "Postgres refuses MySQL values longer than 10 characters");
    warn("bytea", "blob", "65535 bytes");
    warn("bytea", "varbinary(16)", "16 bytes");
    warn("time without time zone", "time(6)", "00:00:00 to 24:00:00");
    warn("timestamp with time zone", "timestamp(6)", "2038-01-19");
    warn("text", "enum('a','b')", "not one of the ENUM's labels");
}

#[test]
fn mysql_timestamp_pairs_with_postgres_timestamp_under_the_utc_rule() {
    warn("timestamp(0) without time zone", "timestamp", "1970-01-01 00:00:01 to 2038-01-19");
    let n = notes(&PgType::base("timestamp(0) without time zone"), &my_t("timestamp"));
    assert!(n.iter().any(|n| n.contains("UTC")), "{n:?}");
    assert!(notes(&PgType::base("timestamp with time zone"), &my_t("timestamp(6)")).is_empty());
    // Postgres' 6 digits would be rounded by TIMESTAMP(0): both fixes named.
    bad("timestamp without time zone", "timestamp", "use DATETIME(6) in MySQL or use timestamptz(0) or timestamp(0) in Postgres");
}

#[test]
fn both_directions_narrowing_is_a_problem_naming_both_fixes() {
    bad("integer", "int(10) unsigned", "neither type holds every value of the other");
    bad("integer", "int(10) unsigned", "use INT in MySQL or use bigint in Postgres");
    bad("bigint", "bigint(20) unsigned", "numeric(20,0)");
    warn("character varying(10)", "varchar(5)", "MySQL refuses Postgres values longer than 5 characters");
    warn("numeric(12,2)", "decimal(12,2) unsigned", "MySQL refuses Postgres values outside non-negative numbers");
}

#[test]
fn lossy_directions_are_problems_naming_both_fixes() {
    bad("numeric(12,2)", "decimal(12,3)", "MySQL values written to Postgres change: values with more than 2 decimal places would be rounded");
    bad("numeric(12,2)", "decimal(12,3)", "use numeric(12,3) in Postgres or use DECIMAL(12,2) in MySQL");
    bad("numeric", "decimal(10,0)", "would be rounded");
    bad("numeric(10,2)", "int(11)", "decimal places");
    bad("timestamp without time zone", "datetime", "fractional seconds differ");
    bad("timestamp without time zone", "datetime", "use DATETIME(6) in MySQL or use timestamp(0) in Postgres");
    bad("time without time zone", "time", "TIME(6)");
    bad("timestamp with time zone", "timestamp(3)", "fractional seconds");
    bad("timestamp(3) without time zone", "datetime(6)", "fractional seconds");
    bad("real", "double", "rounded to single precision (real); use double precision in Postgres or use FLOAT in MySQL");
    bad("double precision", "float", "single precision");
    bad("double precision", "double(10,2)", "without (M,D)");
}

#[test]
fn a_column_computed_on_one_side_is_judged_one_way() {
    let pg = PgType::base("integer");
    let to_mysql = Flows { to_mysql: true, to_postgres: false };
    let to_pg = Flows { to_mysql: false, to_postgres: true };
    assert_eq!(judge(&pg, &my_t("bigint(20)"), to_mysql), Verdict::Ok, "integer fits BIGINT");
    match judge(&pg, &my_t("bigint(20)"), to_pg) {
        Verdict::Problem(e) => assert!(e.contains("values flow only that way; use bigint in Postgres"), "{e}"),
        v => panic!("{v:?}"),
    }
    assert_eq!(judge(&pg, &my_t("int(10) unsigned"), to_mysql), Verdict::Problem(
        "MySQL refuses Postgres values outside 0 to 4294967295, and values flow only that way; use INT in MySQL".into()
    ));
}

#[test]
fn sets_pair_with_text_arrays_and_enums_with_enum_types() {
    warn("text[]", "set('a','b')", "arrays that are not distinct labels of the SET in its declared order");
    warn("character varying(20)[]", "set('Trailers','Deleted Scenes')", "MySQL refuses");
    bad("character varying(3)[]", "set('Trailers','x')", "neither");
    bad("text", "set('a')", "text[]");
    bad("integer[]", "set('a')", "arrays");
    bad("text[]", "varchar(10)", "SET");
    let pg = PgType { name: "mood".into(), typtype: 'e', labels: vec!["happy".into(), "sad".into()] };
    let e = |my: &str| judge(&pg, &my_t(my), Flows::BOTH);
    assert_eq!(e("enum('happy','sad')"), Verdict::Ok);
    assert!(matches!(e("enum('happy','sad','ok')"), Verdict::Warn(w) if w.contains("Postgres refuses MySQL labels 'ok'")));
    assert!(matches!(e("enum('happy')"), Verdict::Warn(w) if w.contains("MySQL refuses Postgres labels 'sad'")));
    match e("enum('happy','ok')") {
        Verdict::Problem(p) => assert!(p.contains("only in Postgres: 'sad'") && p.contains("only in MySQL: 'ok'"), "{p}"),
        v => panic!("{v:?}"),
    }
    assert!(matches!(e("varchar(10)"), Verdict::Problem(p) if p.contains("ENUM('happy','sad')")));
    // Labels compare exactly: the MySQL ones are read as stored, so a `?`
    // (how MariaDB prints an emoji in COLUMN_TYPE) is a different label.
    let emoji = PgType { name: "mood".into(), typtype: 'e', labels: vec!["😀 joy".into(), "it's".into()] };
    assert_eq!(judge(&emoji, &my_t("enum('😀 joy','it''s')"), Flows::BOTH), Verdict::Ok);
    assert!(matches!(judge(&emoji, &my_t("enum('? joy','it''s')"), Flows::BOTH), Verdict::Problem(p) if p.contains("only in MySQL: '? joy'")));
    assert_eq!(pg_kind("mood"), ValueKind::Unsupported, "pg_kind alone cannot see an enum by its name");
    assert_eq!(pg_value_kind(&pg), ValueKind::Enum);
}

#[test]
fn mariadb_json_is_a_checked_longtext() {
    let checked = MyType { json_check: true, ..MyType::text("longtext", "utf8mb4") };
    assert_eq!(supported(&PgType::base("jsonb"), &checked), Ok(()));
    let plain = MyType::text("longtext", "utf8mb4");
    assert!(supported(&PgType::base("jsonb"), &plain).unwrap_err().contains("JSON"));
    assert!(supported(&PgType::base("text"), &checked).unwrap_err().contains("json"));
}

#[test]
fn other_pairs_name_what_to_change() {
    bad("integer[]", "text", "arrays");
    bad("text", "int(11)", "not a supported type pair");
    bad("integer", "varchar(10)", "INT");
    bad("boolean", "tinyint(4)", "TINYINT(1)");
    bad("uuid", "varchar(36)", "CHAR(36)");
    bad("uuid", "binary(16)", "CHAR(36)");
    bad("character(3)", "varchar(3)", "pads");
    bad("text", "char(3)", "trailing spaces");
    bad("character(3)", "char(4)", "lengths differ");
    bad("interval", "time", "interval");
    bad("bytea", "bit(8)", "BIT");
    bad("text", "geometry", "geometry");
    bad("character(2)", "enum('a','b')", "pads");
    bad("date", "datetime", "not a supported type pair");
    assert!(supported(&PgType { name: "posint".into(), typtype: 'd', labels: vec![] }, &MyType::plain("int(11)")).unwrap_err().contains("domain"));
}

#[test]
fn mysql_text_must_be_utf8mb4() {
    let latin = MyType::text("varchar(10)", "latin1");
    assert!(supported(&PgType::base("text"), &latin).unwrap_err().contains("latin1"));
    let mb3 = MyType::text("text", "utf8mb3");
    assert!(supported(&PgType::base("text"), &mb3).unwrap_err().contains("4-byte"));
    // A uuid is ASCII: any charset holds it.
    assert_eq!(supported(&PgType::base("uuid"), &MyType::text("char(36)", "latin1")), Ok(()));
}
