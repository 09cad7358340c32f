export { PersonalDataCodec, type PersonalDataCodecOptions } from './codec.ts';
export { protectPersonalData, type ProtectedEventStore } from './protected-store.ts';
export { MemorySubjectKeyStore } from './memory-key-store.ts';
export {
  forgetSubject,
  forgetter,
  type ForgetSubjectOptions,
  type ForgetSubjectResult,
  type ForgetterParts,
} from './forget.ts';
