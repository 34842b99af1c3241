// Making elements: plain DOM, every text set as a text node (never as HTML). Nothing here
// touches the document when imported, so the modules built on it can be tested without one.

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> & { class?: string } = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const { class: className, ...rest } = props;
  const element: HTMLElementTagNameMap[K] = Object.assign(document.createElement(tag), rest);
  if (className) element.className = className;
  element.append(...children);
  return element;
}
