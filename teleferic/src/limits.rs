//! Limits on the shape of a GraphQL document, checked before it runs, next
//! to the depth and cost limits the schema applies ([`crate::schema`]): how
//! many fields one operation may ask for at its root, how many aliases a
//! document may use (each alias repeats a field's whole work), and how many
//! directives.
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
/// Directives one document may hold (`@skip`, `@include`, ...): each is
/// evaluated where it stands, and GraphQL allows a non-repeatable one only
/// once per place, which the schema does not check.
pub const MAX_DIRECTIVES: usize = 100;

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
    let mut directives = operation_directives(document) + fragment_directives(document);
    for selection_set in operations.into_iter().chain(document.fragments.values().map(|f| &f.node.selection_set.node)) {
        aliases += count_aliases(selection_set);
        if aliases > MAX_ALIASES {
            return Err(Rejection::malformed(format!("the document uses more than {MAX_ALIASES} aliases")));
        }
        directives += count_directives(selection_set);
        if directives > MAX_DIRECTIVES {
            break;
        }
    }
    if directives > MAX_DIRECTIVES {
        return Err(Rejection::malformed(format!("the document uses more than {MAX_DIRECTIVES} directives")));
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

/// Directives on the operations themselves.
fn operation_directives(document: &ExecutableDocument) -> usize {
    match &document.operations {
        DocumentOperations::Single(operation) => operation.node.directives.len(),
        DocumentOperations::Multiple(operations) => operations.values().map(|o| o.node.directives.len()).sum(),
    }
}

/// Directives on the fragment definitions themselves.
fn fragment_directives(document: &ExecutableDocument) -> usize {
    document.fragments.values().map(|fragment| fragment.node.directives.len()).sum()
}

/// Directives in this selection set and below (not through spreads).
fn count_directives(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(field) => field.node.directives.len() + count_directives(&field.node.selection_set.node),
            Selection::InlineFragment(inline) => {
                inline.node.directives.len() + count_directives(&inline.node.selection_set.node)
            }
            Selection::FragmentSpread(spread) => spread.node.directives.len(),
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

    #[test]
    fn too_many_directives_are_refused_wherever_they_stand() {
        let skips = |n: usize| "@skip(if: false) ".repeat(n);
        assert!(checked(&format!("{{ __typename {} }}", skips(MAX_DIRECTIVES))).is_ok());
        let one_field = format!("{{ __typename {} }}", skips(MAX_DIRECTIVES + 1));
        assert!(checked(&one_field).unwrap_err().error.contains("directives"));
        let spread = format!("query {{ ...F {} }} fragment F on Query {{ __typename }}", skips(MAX_DIRECTIVES + 1));
        assert!(checked(&spread).is_err());
        let inline = format!("{{ ... on Query {} {{ __typename }} }}", skips(MAX_DIRECTIVES + 1));
        assert!(checked(&inline).is_err());
        let nested = "signedTimestamp @skip(if: false) ".repeat(MAX_DIRECTIVES + 1);
        let nested = format!("{{ teleferic {{ {nested} }} }}");
        assert!(checked(&nested).unwrap_err().error.contains("directives"));
    }
}
