export function typescript() { return "// placeholder\n"; }
