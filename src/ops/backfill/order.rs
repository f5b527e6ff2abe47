//! The order `backfill --all` copies pairs in when the destination checks
//! foreign keys on the pipeline's writes (a Postgres role that may not run
//! its sessions with `session_replication_role = replica`): parents before
//! children, by the foreign keys between the paired Postgres tables. Pairs
//! whose tables reference each other in a cycle (or depend on one) have no
//! order that works: they are reported, not copied. A table referencing
//! itself is no cycle here (its rows are copied in key order).
//!
//! Where the checks are off (replica sessions in Postgres; MySQL sessions
//! always run with `foreign_key_checks = 0`) any order works and the config
//! order is kept. `order` is pure.

use crate::config::TableName;

/// Foreign keys between tables: (referencing table, referenced table).
pub async fn pg_foreign_keys(client: &tokio_postgres::Client) -> Result<Vec<(TableName, TableName)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT cn.nspname::text, c.relname::text, pn.nspname::text, p.relname::text
             FROM pg_constraint k
             JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
             JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
             WHERE k.contype = 'f' AND k.conparentid = 0",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (TableName { schema: r.get(0), name: r.get(1) }, TableName { schema: r.get(2), name: r.get(3) }))
        .collect())
}

/// Orders `nodes` so that every node comes after the nodes it depends on
/// (`edges`: (dependent, dependency)). Returns the order and the nodes left
/// out: those in a cycle or behind one, each with the cycle it waits for.
pub fn order(nodes: &[usize], edges: &[(usize, usize)]) -> (Vec<usize>, Vec<(usize, Vec<usize>)>) {
    let deps = |n: usize| edges.iter().filter(move |(a, b)| *a == n && *b != n && nodes.contains(b)).map(|(_, b)| *b);
    let mut done: Vec<usize> = Vec::new();
    loop {
        let before = done.len();
        for &n in nodes {
            if !done.contains(&n) && deps(n).all(|d| done.contains(&d)) {
                done.push(n);
            }
        }
        if done.len() == before {
            break;
        }
    }
    let left: Vec<usize> = nodes.iter().copied().filter(|n| !done.contains(n)).collect();
    let stuck = left
        .iter()
        .map(|&n| {
            // Follow undone dependencies until a node repeats: that loop is the cycle.
            let mut path = vec![n];
            let mut at = n;
            loop {
                let Some(next) = deps(at).find(|d| left.contains(d)) else { break };
                if let Some(i) = path.iter().position(|&p| p == next) {
                    path.drain(..i);
                    break;
                }
                path.push(next);
                at = next;
            }
            (n, path)
        })
        .collect();
    (done, stuck)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_config_order_is_kept_otherwise() {
        // 0 rental → 1 customer → 2 address; 3 unrelated; 1 references itself.
        let (o, stuck) = order(&[0, 1, 2, 3], &[(0, 1), (1, 2), (1, 1)]);
        assert_eq!(o, vec![2, 3, 1, 0]);
        assert!(stuck.is_empty());
        let (o, _) = order(&[3, 2], &[(0, 1)]);
        assert_eq!(o, vec![3, 2], "edges to pairs not selected do not matter");
    }

    #[test]
    fn cycles_and_what_waits_for_them_are_left_out_with_the_cycle() {
        // 0 store ↔ 1 staff, 2 payment → 1, 3 alone.
        let (o, stuck) = order(&[0, 1, 2, 3], &[(0, 1), (1, 0), (2, 1)]);
        assert_eq!(o, vec![3]);
        assert_eq!(stuck.len(), 3);
        assert_eq!(stuck[0], (0, vec![0, 1]));
        assert_eq!(stuck[2].0, 2);
        assert_eq!(stuck[2].1, vec![1, 0], "payment waits for the store/staff cycle");
    }
}
