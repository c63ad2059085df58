//! The served schema is section 10's, type for type and field for field.

use crate::helpers::*;
use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
use pm_teleferic::Gateway;
use std::collections::BTreeMap;

/// Each type as `kind` → one line per field (`name(args): Type`), so two
/// schemas compare without regard to layout or descriptions.
fn shape(sdl: &str) -> BTreeMap<String, Vec<String>> {
    let document = parse_schema(sdl).expect("the SDL parses");
    let mut types = BTreeMap::new();
    for definition in document.definitions {
        let TypeSystemDefinition::Type(definition) = definition else {
            continue;
        };
        let definition = definition.node;
        let input_value =
            |v: &async_graphql::parser::types::InputValueDefinition| format!("{}: {}", v.name.node, v.ty.node);
        let (kind, mut lines) = match &definition.kind {
            TypeKind::Scalar => ("scalar", vec![]),
            TypeKind::Enum(e) => ("enum", e.values.iter().map(|v| v.node.value.node.to_string()).collect()),
            TypeKind::Object(o) => (
                "type",
                o.fields
                    .iter()
                    .map(|f| {
                        let args: Vec<String> = f.node.arguments.iter().map(|a| input_value(&a.node)).collect();
                        let args = if args.is_empty() { String::new() } else { format!("({})", args.join(", ")) };
                        format!("{}{args}: {}", f.node.name.node, f.node.ty.node)
                    })
                    .collect(),
            ),
            TypeKind::InputObject(i) => ("input", i.fields.iter().map(|f| input_value(&f.node)).collect()),
            other => panic!("the contract has no {other:?}"),
        };
        lines.sort();
        types.insert(format!("{kind} {}", definition.name.node), lines);
    }
    types
}

fn contract_sdl() -> String {
    let protocol = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"))
        .expect("docs/PROTOCOL.md is beside the crate");
    let section = &protocol[protocol.find("## 10. APIs").expect("section 10")..];
    let start = section.find("```graphql").expect("a graphql block") + "```graphql".len();
    let end = start + section[start..].find("```").expect("the block ends");
    section[start..end].to_owned()
}

#[tokio::test]
async fn the_served_schema_is_exactly_section_10() {
    let app = spawn_app().await;
    let gateway = Gateway::new(app.authorizer.clone(), app.reader.clone(), Default::default());
    let served = shape(&gateway.sdl());
    let contract = shape(&contract_sdl());
    assert!(contract.len() > 15, "the contract block was found");
    assert_eq!(served, contract);
}
