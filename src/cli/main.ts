/** The `tidemark` executable: runs the command line (the commands are in cli.ts). */
import { main } from './cli.ts';

process.exitCode = await main(process.argv.slice(2));
