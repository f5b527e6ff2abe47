//! Type regressions found by the round-trip tests: each pins one conversion
//! bug that was fixed (or, when ignored, one that is still open), using the
//! fixtures of `types.rs`.

use super::types::*;
use super::util::*;
use crate::support;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Known failures: bugs outside the conversion code, and values a destination
// cannot hold.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_enum_label_with_a_4_byte_character_arrives() {
    // MariaDB prints '😀 joy' as '? joy' in information_schema: read from there,
    // the label was refused by the Postgres enum (quarantined) and arrived in
    // text as '? clef'.
    let cols = &[col("c_enum", "mood", MY_MOOD, Canon::Text), col("c_enum_t", "text", "ENUM('😀','𝄞 clef','plain')", Canon::Text)];
    let rows = vec![
        row(cols, 1, &[("c_enum", s("😀 joy")), ("c_enum_t", s("plain"))]),
        row(cols, 2, &[("c_enum", s("ok")), ("c_enum_t", s("𝄞 clef"))]),
    ];
    let out = round_trip("types_enum4", cols, &rows, Source::Mariadb, "").await;
    assert_eq!(cell(&out.inserted.0, cols, 1, "c_enum"), Some("😀 joy"));
    assert_eq!(cell(&out.inserted.0, cols, 1, "c_enum_t"), Some("plain"));
    assert_eq!(cell(&out.inserted.0, cols, 2, "c_enum_t"), Some("𝄞 clef"));
    assert_eq!(cell(&out.updated.0, cols, 1, "c_enum_t"), Some("𝄞 clef"));
    assert!(out.conflicts.is_empty(), "{:?}", out.conflicts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_time_outside_postgres_range_is_quarantined() {
    let cols = &[col("c_time", "time(6)", "TIME(6)", Canon::Time)];
    let db = support::fresh_db("types_time_range").await;
    let pg = db.pg().await;
    pg.batch_execute(&pg_create(cols)).await.unwrap();
    let mut my = db.my().await;
    my.query_drop(my_create(cols)).await.unwrap();
    let run = InProcess::start(&db.write_config(&pair_config(&db, ""))).await;
    for (id, t) in [(1, "12:00:00"), (2, "-00:00:00.000001"), (3, "838:59:59"), (4, "24:00:00.000001"), (5, "-838:59:59"), (6, "24:00:00")] {
        my.query_drop(format!("INSERT INTO types VALUES ({id}, '{t}')")).await.unwrap();
    }
    // The rows Postgres can hold arrive; the others are quarantined, and nothing stops.
    let t0 = Instant::now();
    loop {
        let got = pg_rows(&pg, "SELECT id::text, to_char(c_time, 'HH24:MI:SS.US') FROM types ORDER BY id").await;
        let quarantined = pg_rows(&pg, &format!("SELECT count(*)::text FROM tandem.quarantine WHERE pipeline = '{}'", db.name)).await;
        let want: Rows = vec![
            vec![Some("1".into()), Some("12:00:00.000000".into())],
            vec![Some("6".into()), Some("24:00:00.000000".into())],
        ];
        if got == want && quarantined == vec![vec![Some("4".to_string())]] {
            break;
        }
        assert!(t0.elapsed() < WAIT && !run.task.is_finished(), "postgres has {got:?}, quarantine {quarantined:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    run.stop().await;
    release_slot(&pg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_negative_mediumint_arrives_negative() {
    let cols = &[col("c_i24", "integer", "MEDIUMINT", Canon::Exact)];
    let rows = vec![
        row(cols, 1, &[("c_i24", "-8388608".into())]),
        row(cols, 2, &[("c_i24", "-1".into())]),
        row(cols, 3, &[("c_i24", "8388607".into())]),
    ];
    let out = round_trip("types_mediumint", cols, &rows, Source::Mariadb, "").await;
    assert_eq!(cell(&out.inserted.0, cols, 2, "c_i24"), Some("-1"));
    assert!(out.conflicts.is_empty(), "{:?}", out.conflicts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_char_n_updates_are_not_conflicts() {
    let cols = &[col("c_char", "char(10)", "CHAR(10)", Canon::Text)];
    let rows = vec![row(cols, 1, &[("c_char", s("ab"))]), row(cols, 2, &[("c_char", s("cd  "))]), row(cols, 3, &[])];
    let out = round_trip("types_char_conflict", cols, &rows, Source::Postgres, "on_conflict = \"mysql-wins\"").await;
    assert!(out.conflicts.is_empty(), "{:?}", out.conflicts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_real_updates_are_not_conflicts() {
    let cols = &[col("c_f32", "real", "FLOAT", Canon::F32)];
    let rows = vec![
        row(cols, 1, &[("c_f32", "'123456.79'".into())]),
        row(cols, 2, &[("c_f32", "'3.4028235e38'".into())]),
        row(cols, 3, &[("c_f32", "'1.1754944e-38'".into())]),
    ];
    let out = round_trip("types_real_conflict", cols, &rows, Source::Postgres, "on_conflict = \"mysql-wins\"").await;
    assert!(out.conflicts.is_empty(), "{:?}", out.conflicts);
}

