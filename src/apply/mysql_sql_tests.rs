//! Unit tests of `mysql_sql`: literals, statements and row lists.
use super::*;

fn lit(v: Value, k: ValueKind) -> String {
    let mut s = String::new();
    literal(&mut s, &v, k).unwrap();
    s
}

#[test]
fn literals_are_exact_and_safe() {
    assert_eq!(lit(Value::Text("it's \\ fine".into()), ValueKind::Text), "'it''s \\ fine'");
    assert_eq!(lit(Value::Bytes(vec![0, 255]), ValueKind::Bytes), "X'00FF'");
    assert_eq!(lit(Value::Decimal("-12.50".into()), ValueKind::Decimal), "-12.50");
    assert_eq!(lit(Value::Float(0.1), ValueKind::Float), "0.1");
    assert_eq!(lit(Value::Float(1e300), ValueKind::Float), "1e300");
    assert_eq!(lit(Value::Timestamp(1_500), ValueKind::Timestamp), "'1970-01-01 00:00:00.001500'");
    assert_eq!(lit(Value::Bool(true), ValueKind::Bool), "1");
    assert_eq!(lit(Value::UInt(u64::MAX), ValueKind::UInt), "18446744073709551615");
}

fn col_lit(v: Value, my_type: &str) -> Result<String, String> {
    let mut s = String::new();
    column_literal(&mut s, &v, ValueKind::Float, my_type).map(|_| s)
}

#[test]
fn single_precision_floats_are_written_as_the_exact_f32() {
    // Postgres prints the largest real as 3.4028235e+38, which MySQL's FLOAT refuses.
    assert_eq!(col_lit(Value::Float(3.4028235e38), "float").unwrap(), "3.4028234663852886e38");
    assert_eq!(col_lit(Value::Float(-3.4028235e38), "FLOAT unsigned").unwrap(), "-3.4028234663852886e38");
    assert_eq!(col_lit(Value::Float(0.1), "float(7,3)").unwrap(), "0.10000000149011612");
    assert_eq!(col_lit(Value::Float(1e-45), "float").unwrap(), "1.401298464324817e-45");
    assert_eq!(col_lit(Value::Float(-0.0), "float").unwrap(), "-0.0");
    // Double columns keep the shortest f64 text.
    assert_eq!(col_lit(Value::Float(3.4028235e38), "double").unwrap(), "3.4028235e38");
    assert_eq!(col_lit(Value::Float(5e-324), "double").unwrap(), "5e-324");
    // Beyond f32, and not special values: errors, never clamped.
    assert!(col_lit(Value::Float(1e39), "float").unwrap_err().contains("out of range"));
    assert!(col_lit(Value::Float(f64::INFINITY), "float").is_err());
    assert!(col_lit(Value::Float(f64::NAN), "float").is_err());
    // Other values in a FLOAT column are unchanged.
    assert_eq!(col_lit(Value::Decimal("1.5".into()), "float").unwrap(), "1.5");
    assert!(is_single_float("float") && is_single_float("FLOAT(10,2)") && !is_single_float("double") && !is_single_float("fl"));
}

#[test]
fn plain_insert_has_no_update_clause() {
    use crate::config::{Owner, TableName};
    use crate::schema::ColumnSchema;
    let col = |n: &str| ColumnSchema::for_tests(n, Owner::Both, "text", "text");
    let t = TableName { schema: "d".into(), name: "t".into() };
    let schema = PairSchema { pair: 0, name: "p".into(), pg_table: t.clone(), my_table: t, columns: vec![col("id"), col("v")], key: vec![0] };
    let (a, b) = (vec![Value::Int(1), Value::Text("it's".into())], vec![Value::Int(2), Value::Null]);
    let mut out = String::new();
    render_plain_insert(&mut out, &schema, &[&a, &b]).unwrap();
    assert_eq!(out, "INSERT INTO `d`.`t` (`id`,`v`) VALUES (1,'it''s'),(2,NULL);\n");
    let mut upsert = String::new();
    render_run(&mut upsert, &schema, &[RowOp::Upsert(a), RowOp::Upsert(b)], RowList::Values).unwrap();
    assert_eq!(upsert, format!("{} ON DUPLICATE KEY UPDATE `v`=VALUES(`v`);\n", out.trim_end_matches(";\n")));
}

#[test]
fn multi_row_updates_list_their_rows_in_the_servers_form() {
    use crate::config::{Owner, TableName};
    use crate::schema::ColumnSchema;
    let col = |n: &str| ColumnSchema::for_tests(n, Owner::Both, "text", "text");
    let t = TableName { schema: "d".into(), name: "t".into() };
    let schema = PairSchema { pair: 0, name: "p".into(), pg_table: t.clone(), my_table: t, columns: vec![col("id"), col("v"), col("w")], key: vec![0] };
    let op = |k: &str, v: &str| RowOp::PartialUpdate {
        key: vec![Value::Text(k.into())],
        row: vec![Value::Text(k.into()), Value::Text(v.into()), Value::Unchanged],
    };
    let ops = [op("a", "1"), op("b", "2"), op("c", "3")];
    let render = |rows| {
        let mut out = String::new();
        render_run(&mut out, &schema, &ops, rows).unwrap();
        out
    };
    let head = "UPDATE `d`.`t` AS t JOIN (SELECT 'a' AS k0,'a' AS v0,'1' AS v1";
    let tail = ") AS u ON t.`id` = u.k0 SET t.`id` = u.v0,t.`v` = u.v1;\n";
    assert_eq!(render(RowList::UnionAll), format!("{head} UNION ALL SELECT 'b','b','2' UNION ALL SELECT 'c','c','3'{tail}"));
    assert_eq!(render(RowList::Values), format!("{head} UNION ALL VALUES ('b','b','2'),('c','c','3'){tail}"));
    assert_eq!(render(RowList::ValuesRow), format!("{head} UNION ALL VALUES ROW('b','b','2'),ROW('c','c','3'){tail}"));
    // One row is a plain UPDATE whatever the form.
    let mut one = String::new();
    render_run(&mut one, &schema, &ops[..1], RowList::Values).unwrap();
    assert_eq!(one, "UPDATE `d`.`t` SET `id`='a',`v`='1' WHERE (`id`='a');\n");
}

#[test]
fn guarded_updates_compare_the_set_columns_and_the_timestamp_with_the_before_image() {
    use crate::config::{Owner, TableName};
    use crate::schema::ColumnSchema;
    let t = TableName { schema: "d".into(), name: "t".into() };
    let columns = vec![
        ColumnSchema::for_tests("id", Owner::Both, "bigint", "bigint"),
        ColumnSchema::for_tests("v", Owner::Both, "text", "text"),
        ColumnSchema::for_tests("n", Owner::Both, "numeric(12,2)", "decimal(12,2)"),
        ColumnSchema::for_tests("ts", Owner::Both, "timestamp", "datetime(6)"),
        ColumnSchema::for_tests("f", Owner::Both, "double precision", "double"),
    ];
    let schema = PairSchema { pair: 0, name: "p".into(), pg_table: t.clone(), my_table: t, columns, key: vec![0] };
    let set = |id: i64, v: &str| RowOp::PartialUpdate {
        key: vec![Value::Int(id)],
        row: vec![Value::Unchanged, Value::Text(v.into()), Value::Unchanged, Value::Unchanged, Value::Unchanged],
    };
    let before = |id: i64| vec![Value::Int(id), Value::Text(format!("old{id}")), Value::Decimal("1.50".into()), Value::Timestamp(0), Value::Float(0.5)];
    let (b1, b2) = (before(1), before(2));
    let lookup = |k: &Row| match k[0] {
        Value::Int(1) => Some(&b1),
        Value::Int(2) => Some(&b2),
        _ => None,
    };
    let ops = [set(1, "a"), set(2, "b")];
    let mut out = String::new();
    assert_eq!(render_guarded(&mut out, &schema, &ops, lookup, Some(3), RowList::Values).unwrap(), Some(2));
    assert_eq!(
        out,
        "UPDATE `d`.`t` AS t JOIN (SELECT 1 AS k0,'a' AS v0,'old1' AS b0,'1970-01-01 00:00:00' AS b1 UNION ALL VALUES (2,'b','old2','1970-01-01 00:00:00')) \
         AS u ON t.`id` = u.k0 AND CAST(t.`v` AS BINARY) <=> CAST(u.b0 AS BINARY) AND t.`ts` <=> u.b1 SET t.`v` = u.v0;\nSET @tandem_rows = @tandem_rows + ROW_COUNT();\n"
    );
    // A floating-point column cannot be compared exactly in SQL: nothing is rendered.
    let float = [RowOp::PartialUpdate { key: vec![Value::Int(1)], row: vec![Value::Unchanged, Value::Unchanged, Value::Unchanged, Value::Unchanged, Value::Float(1.5)] }];
    let mut out = String::from("kept;");
    assert_eq!(render_guarded(&mut out, &schema, &float, lookup, None, RowList::Values).unwrap(), None);
    assert_eq!(render_guarded(&mut out, &schema, &ops, lookup, Some(4), RowList::Values).unwrap(), None, "nor as the timestamp");
    assert_eq!(render_guarded(&mut out, &schema, &[set(3, "c")], lookup, None, RowList::Values).unwrap(), None, "no before-image");
    assert_eq!(out, "kept;");
}

#[test]
fn the_row_list_form_follows_the_server_version() {
    assert_eq!(RowList::for_server("10.11.19-MariaDB-0+deb12u1-log"), RowList::Values);
    assert_eq!(RowList::for_server("10.3.3-MariaDB"), RowList::Values);
    assert_eq!(RowList::for_server("10.2.44-MariaDB-log"), RowList::UnionAll);
    assert_eq!(RowList::for_server("8.0.36"), RowList::ValuesRow);
    assert_eq!(RowList::for_server("8.0.18-log"), RowList::UnionAll);
    assert_eq!(RowList::for_server("5.7.44"), RowList::UnionAll);
    assert_eq!(RowList::for_server("9.1.0"), RowList::ValuesRow);
    assert_eq!(RowList::for_server(""), RowList::UnionAll);
}

#[test]
fn unrepresentable_values_are_errors() {
    let mut s = String::new();
    assert!(literal(&mut s, &Value::Float(f64::NAN), ValueKind::Float).is_err());
    assert!(literal(&mut s, &Value::Decimal("NaN".into()), ValueKind::Decimal).is_err());
    assert!(literal(&mut s, &Value::Decimal("1; DROP TABLE x".into()), ValueKind::Decimal).is_err());
    assert!(literal(&mut s, &Value::Unchanged, ValueKind::Text).is_err());
}
