//! How a paired Postgres table is built: a declaratively partitioned table
//! (replicated through its root: the publication has
//! `publish_via_partition_root`, every leaf partition needs REPLICA
//! IDENTITY FULL), or a table tandem cannot replicate as one table — a
//! parent of inheritance children (their rows reach the stream as changes
//! of the children) or a table with rules (Postgres refuses `INSERT … ON
//! CONFLICT` on a table with INSERT rules, and rules rewrite tandem's
//! writes). `refusal` words the reason and the remedy once, for `validate`
//! (a problem) and `init` (which then adds nothing to the publication).

use crate::config::TableName;

/// What matters about a Postgres table's structure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableShape {
    /// `r` table, `p` partitioned table, ...
    pub relkind: String,
    /// Inheritance children (`schema.name`), not declarative partitions.
    pub children: Vec<String>,
    /// Rules on the table (`name (ON event)`).
    pub rules: Vec<String>,
    /// Leaf partitions (`schema.name`) whose REPLICA IDENTITY is not FULL.
    pub partitions_not_full: Vec<String>,
    /// The same partitions, quoted for SQL.
    pub quoted_not_full: Vec<String>,
}

impl TableShape {
    pub fn partitioned(&self) -> bool {
        self.relkind == "p"
    }

    /// Why tandem cannot replicate the table `t`, with what to change; `None` when it can.
    pub fn refusal(&self, t: &TableName) -> Option<String> {
        if !self.children.is_empty() {
            return Some(format!(
                "has inheritance children ({}): their rows reach the replication stream as changes of the children, not of {t}, so tandem \
                 cannot replicate it as one table: convert it to a declaratively partitioned table (CREATE TABLE … PARTITION BY …, which \
                 tandem replicates through its root), or pair each child table with a MySQL table of its own",
                self.children.join(", ")
            ));
        }
        if !self.rules.is_empty() {
            return Some(format!(
                "has rules ({}): Postgres refuses INSERT … ON CONFLICT on a table with INSERT rules, and rules rewrite the rows tandem \
                 writes: drop them (DROP RULE … ON {t}), e.g. in favour of declarative partitioning",
                self.rules.join(", ")
            ));
        }
        None
    }
}

/// Reads the shape of `t`; `None` when it does not exist.
pub async fn pg_table_shape(client: &tokio_postgres::Client, t: &TableName) -> Result<Option<TableShape>, tokio_postgres::Error> {
    let Some(rel) = client
        .query_opt(
            "SELECT c.oid, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
            &[&t.schema, &t.name],
        )
        .await?
    else {
        return Ok(None);
    };
    let oid: u32 = rel.get(0);
    let relkind: String = rel.get(1);
    let children = client
        .query(
            "SELECT format('%s.%s', n.nspname, c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.inhparent = $1 AND NOT c.relispartition ORDER BY 1",
            &[&oid],
        )
        .await?;
    let rules = client
        .query(
            "SELECT format('%s (ON %s)', r.rulename, CASE r.ev_type WHEN '1' THEN 'SELECT' WHEN '2' THEN 'UPDATE' WHEN '3' THEN 'INSERT' ELSE 'DELETE' END)
             FROM pg_rewrite r WHERE r.ev_class = $1 AND r.rulename <> '_RETURN' ORDER BY 1",
            &[&oid],
        )
        .await?;
    let leaves = if relkind == "p" {
        client
            .query(
                "SELECT format('%I.%I', n.nspname, c.relname), format('%s.%s', n.nspname, c.relname), c.relreplident::text = 'f'
                 FROM pg_partition_tree($1::oid::regclass) p JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE p.isleaf ORDER BY 2",
                &[&oid],
            )
            .await?
    } else {
        Vec::new()
    };
    Ok(Some(TableShape {
        relkind,
        children: children.iter().map(|r| r.get(0)).collect(),
        rules: rules.iter().map(|r| r.get(0)).collect(),
        partitions_not_full: leaves.iter().filter(|r| !r.get::<_, bool>(2)).map(|r| r.get(1)).collect(),
        quoted_not_full: leaves.iter().filter(|r| !r.get::<_, bool>(2)).map(|r| r.get(0)).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inheritance_and_rules_are_refused_with_a_remedy() {
        let t = TableName { schema: "public".into(), name: "payment".into() };
        let inh = TableShape { relkind: "r".into(), children: vec!["public.payment_p2007_01".into()], ..TableShape::default() };
        let why = inh.refusal(&t).unwrap_or_default();
        assert!(why.contains("public.payment_p2007_01") && why.contains("PARTITION BY") && why.contains("pair each child table"), "{why}");
        let ruled = TableShape { relkind: "r".into(), rules: vec!["payment_insert (ON INSERT)".into()], ..TableShape::default() };
        assert!(ruled.refusal(&t).unwrap_or_default().contains("DROP RULE … ON public.payment"));
        assert_eq!(TableShape { relkind: "p".into(), ..TableShape::default() }.refusal(&t), None);
    }
}
