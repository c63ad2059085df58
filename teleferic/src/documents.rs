//! The parsed documents of recent query texts. A client sends the same few
//! texts again and again (its mutation, its queries) with other variables,
//! and parsing one costs far more than finding it: a text seen before is
//! not parsed again. Only documents within the [`crate::limits`] are kept,
//! so a hit needs no further check; the cache is bounded in entries and in
//! the length of the texts it keeps, the least recently used going first.

use async_graphql::parser::types::ExecutableDocument;
use pm_models::recent::Recent;

/// Documents kept at most.
const CAPACITY: usize = 256;
/// The longest query text whose document is kept, in bytes.
const LONGEST_TEXT: usize = 4096;

pub(crate) struct ParsedDocuments(Recent<String, ExecutableDocument>);

impl Default for ParsedDocuments {
    fn default() -> Self {
        Self(Recent::new(CAPACITY))
    }
}

impl ParsedDocuments {
    /// The document of `text`, if it was kept.
    pub(crate) fn get(&self, text: &str) -> Option<ExecutableDocument> {
        if text.len() > LONGEST_TEXT {
            return None;
        }
        self.0.get(text)
    }

    /// Keeps `document`, the parse of `text`, which is within the limits.
    pub(crate) fn keep(&self, text: &str, document: ExecutableDocument) {
        if text.len() <= LONGEST_TEXT {
            self.0.put(text.to_owned(), document);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    #[test]
    fn a_kept_document_is_found_by_its_exact_text_and_the_least_recent_goes_first() {
        let documents = ParsedDocuments::default();
        let text = "{ teleferic { signedTimestamp } }";
        assert!(documents.get(text).is_none());
        documents.keep(text, parse_query(text).unwrap());
        let found = documents.get(text).expect("kept");
        assert_eq!(format!("{found:?}"), format!("{:?}", parse_query(text).unwrap()));
        assert!(documents.get("{ teleferic { signedTimestamp }}").is_none(), "another text is another entry");

        for i in 0..CAPACITY {
            let other = format!("{{ a{i}: __typename }}");
            documents.keep(&other, parse_query(&other).unwrap());
        }
        assert!(documents.get(text).is_none(), "pushed out by newer texts");

        let long = format!("{{ __typename {} }}", " ".repeat(LONGEST_TEXT));
        documents.keep(&long, parse_query(&long).unwrap());
        assert!(documents.get(&long).is_none(), "a long text is not kept");
    }
}
