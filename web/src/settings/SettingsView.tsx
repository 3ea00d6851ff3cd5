import { GoogleSection } from "./GoogleSection";
import { ProfileSection } from "./ProfileSection";
import { UsageSection } from "./UsageSection";

export default function SettingsView() {
  return (
    <section className="settings">
      <h1 tabIndex={-1}>Settings</h1>
      <GoogleSection />
      <ProfileSection />
      <UsageSection />
    </section>
  );
}
