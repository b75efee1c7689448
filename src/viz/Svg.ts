/**
 * Svg: what the pictures share: text made safe to place inside an SVG document.
 */

/**
 * `s` with the characters XML gives a meaning (&, <, >) escaped.
 * @category formatting
 */
export const escapeXml = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
