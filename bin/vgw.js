#!/usr/bin/env node
// Entry point for `npx vgw`: the CLI is TypeScript run directly by Node 24 (type stripping).
import '../src/cli/main.ts';
