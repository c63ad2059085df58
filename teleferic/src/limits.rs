//! Limits on the shape of a GraphQL document, checked before it runs, next
//! to the depth and cost limits the schema applies ([`crate::schema`]): how
//! many fields one operation may ask for at its root, and how many aliases a
//! document may use (each alias repeats a field's whole work).
//!
//! Fragments are followed where they are spread, a fragment that spreads
//! itself is refused by GraphQL validation later, and this walk stops at it.

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, Selection, SelectionSet};
use pm_models::Rejection;
use std::collections::HashSet;

/// Root fields one operation may select: enough for a client that batches
/// 100 lookups by hash into one request.
pub const MAX_ROOT_FIELDS: usize = 100;
/// Aliased fields one document may hold.
pub const MAX_ALIASES: usize = 100;

/// Refuses a document past either limit, with a sentence naming it.
pub fn check(document: &ExecutableDocument) -> Result<(), Rejection> {
    let operations: Vec<&SelectionSet> = match &document.operations {
        DocumentOperations::Single(operation) => vec![&operation.node.selection_set.node],
        DocumentOperations::Multiple(operations) => {
            operations.values().map(|operation| &operation.node.selection_set.node).collect()
        }
    };
    for selection_set in &operations {
        let roots = root_fields(document, selection_set, &mut HashSet::new());
        if roots > MAX_ROOT_FIELDS {
            return Err(Rejection::malformed(format!(
                "an operation selects {roots} root fields; at most {MAX_ROOT_FIELDS} are allowed"
            )));
        }
    }
    let mut aliases = 0;
    for selection_set in operations.into_iter().chain(document.fragments.values().map(|f| &f.node.selection_set.node)) {
        aliases += count_aliases(selection_set);
        if aliases > MAX_ALIASES {
            return Err(Rejection::malformed(format!("the document uses more than {MAX_ALIASES} aliases")));
        }
    }
    Ok(())
}

/// Fields selected at this level, through fragments spread or inlined here.
fn root_fields<'a>(document: &'a ExecutableDocument, set: &'a SelectionSet, seen: &mut HashSet<&'a str>) -> usize {
    set.items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(_) => 1,
            Selection::InlineFragment(inline) => root_fields(document, &inline.node.selection_set.node, seen),
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                match document.fragments.get(name) {
                    Some(fragment) if seen.insert(name) => {
                        root_fields(document, &fragment.node.selection_set.node, seen)
                    }
                    _ => 0,
                }
            }
        })
        .sum()
}

/// Aliased fields in this selection set and below (not through spreads:
/// each fragment is counted once, on its own).
fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()) + count_aliases(&field.node.selection_set.node)
            }
            Selection::InlineFragment(inline) => count_aliases(&inline.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn checked(query: &str) -> Result<(), Rejection> {
        check(&parse_query(query).unwrap())
    }

    #[test]
    fn ordinary_documents_pass() {
        assert!(checked("{ teleferic { persona { address } signedTimestamp } }").is_ok());
        let hundred: String = (0..100).map(|i| format!("a{i}: teleferic {{ signedTimestamp }} ")).collect();
        assert!(checked(&format!("{{ {hundred} }}")).is_ok());
    }

    #[test]
    fn too_many_root_fields_are_refused_even_through_fragments() {
        let many: String = (0..MAX_ROOT_FIELDS + 1).map(|_| "__typename ").collect();
        assert!(checked(&format!("{{ {many} }}")).unwrap_err().error.contains("root fields"));
        let fragment = format!("query {{ ...F }} fragment F on Query {{ {many} }}");
        assert!(checked(&fragment).is_err());
        let inline = format!("{{ ... on Query {{ {many} }} }}");
        assert!(checked(&inline).is_err());
    }

    #[test]
    fn too_many_aliases_are_refused_at_any_depth() {
        let aliases: String = (0..MAX_ALIASES + 1).map(|i| format!("a{i}: address ")).collect();
        let query = format!("{{ teleferic {{ persona {{ {aliases} }} }} }}");
        assert!(checked(&query).unwrap_err().error.contains("aliases"));
    }

    #[test]
    fn a_fragment_that_spreads_itself_does_not_loop() {
        assert!(checked("query { ...F } fragment F on Query { ...F __typename }").is_ok());
    }
}
