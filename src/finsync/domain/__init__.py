"""Pure domain: entities, value objects, enums, errors and ports."""
