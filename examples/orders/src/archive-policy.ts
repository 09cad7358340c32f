/**
 * Which orders move to the archive (`tidemark streams archive --older-than 90d`): those that are
 * finished, shipped or cancelled, whatever their age. The age is the command's. A finished order
 * takes no more commands, so archiving it changes nothing a client can do; it stays readable
 * (`GET /orders/{id}`, `/events`, `/history`).
 */
import type { ArchivePolicy } from 'tidemark';

const FINISHED = new Set(['OrderShipped', 'OrderCancelled']);

export const orderArchivePolicy: ArchivePolicy = (events) =>
  FINISHED.has(events.at(-1)?.type ?? '');
