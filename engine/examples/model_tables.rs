//! A Wasm module that keeps every table of the R4 model, for measuring what the model adds to
//! a module (`scripts/size.sh` compares it with `model_baseline`).
use hearth_engine::model::{self, CODE_SYSTEMS, CONSTRAINTS, SEARCH_PARAMS, TYPES, VALUE_SETS};

/// Reads every table so that the linker keeps them all; returns a number that depends on all.
#[no_mangle]
pub extern "C" fn model_weight() -> usize {
    let mut res = usize::from(model::type_by_name("Patient").map_or(0, |id| id.0));
    for def in &TYPES {
        res += def.name.len()
            + def.constraints.len()
            + def.primitive.and_then(|p| p.regex).map_or(0, str::len);
        for element in def.elements {
            res += element.name.len()
                + element.constraints.len()
                + element.min as usize
                + usize::from(element.flags);
            for element_type in element.types {
                res += usize::from(element_type.type_id.0);
                res += element_type
                    .targets
                    .iter()
                    .chain(element_type.profiles)
                    .map(|text| text.len())
                    .sum::<usize>();
            }
            res += element.binding.map_or(0, |binding| {
                binding.value_set.len() + usize::from(binding.value_set_idx.unwrap_or(0))
            });
        }
        res += def
            .json_names
            .iter()
            .map(|name| name.name.len() + usize::from(name.element))
            .sum::<usize>();
    }
    res += CONSTRAINTS
        .iter()
        .map(|c| c.key.len() + c.human.len() + c.expression.len())
        .sum::<usize>();
    res += CODE_SYSTEMS
        .iter()
        .map(|system| system.len())
        .sum::<usize>();
    for value_set in &VALUE_SETS {
        res += value_set.url.len() + value_set.name.len();
        res += value_set.codes.map_or(0, |codes| {
            codes
                .iter()
                .map(|(system, code)| usize::from(*system) + code.len())
                .sum()
        });
    }
    for param in &SEARCH_PARAMS {
        res += param.url.len()
            + param.name.len()
            + param.code.len()
            + param.expression.map_or(0, str::len);
        res += param
            .base
            .iter()
            .chain(param.target)
            .chain(param.modifier)
            .chain(param.comparator)
            .map(|t| t.len())
            .sum::<usize>();
        res += param
            .components
            .iter()
            .map(|(definition, expression)| definition.len() + expression.len())
            .sum::<usize>();
    }
    res
}
