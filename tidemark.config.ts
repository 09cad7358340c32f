/**
 * The `tidemark` CLI's config in this repository: the Orders reference service's
 * (examples/orders/tidemark.config.ts, which the build also compiles to JavaScript).
 */
export { default } from './examples/orders/tidemark.config.ts';
