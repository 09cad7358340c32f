/**
 * Fault injection: a view of a real object in which some methods are replaced. Everything else
 * goes to the real object (bound, so private fields keep working).
 */
export function withFaults<T extends object>(target: T, overrides: Partial<T>): T {
  return new Proxy(target, {
    get(object, key) {
      if (Object.prototype.hasOwnProperty.call(overrides, key)) return overrides[key as keyof T];
      const value = Reflect.get(object, key, object);
      return typeof value === 'function' ? value.bind(object) : value;
    },
  });
}
